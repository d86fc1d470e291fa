// Environment variables fmlaunch carries to every rank.
//
// Sources, later ones winning: (1) variables of fmlaunch's own environment whose names start with
// NCCL_, UCX_, FI_, OMP_ or FM_, plus PATH and LD_LIBRARY_PATH; (2) the env file (`.fmenv` in the
// working directory, or --env_file PATH); (3) each --env KEY=VALUE. Env files hold KEY=VALUE lines,
// `#` comment lines, blank lines, an optional `export ` prefix, and values optionally wrapped in one
// pair of matching quotes; anything else (a line without '=', a bad name) is an InputError naming
// file:line.
//
// Secrets: a variable whose name contains KEY, TOKEN, SECRET, PASSWORD, PASSWD or CREDENTIAL
// (any case) is shown as *** wherever fmlaunch prints it (--dry_run, start-up summary, logs).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fm::launcher {

struct EnvVar {
  std::string name;
  std::string value;
};

inline constexpr const char* kDefaultEnvFile = ".fmenv";
inline constexpr const char* kMasked = "***";

bool is_valid_env_name(std::string_view name);
bool is_secret_name(std::string_view name);

// "KEY=VALUE" (from --env); errors name `where`.
EnvVar parse_env_assignment(std::string_view text, const std::string& where);

std::vector<EnvVar> parse_env_file(std::string_view text, const std::string& path);
std::vector<EnvVar> read_env_file(const std::string& path);

// True for names exported by default from fmlaunch's own environment.
bool is_exported_by_default(std::string_view name);

// Merges the three sources in order; a later value of the same name replaces the earlier one in
// place (the first position is kept, so the order is stable).
std::vector<EnvVar> collect_exports(const std::vector<EnvVar>& inherited, const std::vector<EnvVar>& file_vars,
                                    const std::vector<EnvVar>& cli_vars);

// The process environment as a list, and the subset exported by default.
std::vector<EnvVar> current_environment();
std::vector<EnvVar> default_exports(const std::vector<EnvVar>& environment);

// Copy with secret values replaced by ***.
std::vector<EnvVar> masked(const std::vector<EnvVar>& vars);
std::string display_value(const EnvVar& var);

// The process environment as a "K=V" block, in its own order.
std::vector<std::string> current_environment_block();

// Sets/overrides `vars` in a "K=V" environment block.
void apply_env(std::vector<std::string>& block, const std::vector<EnvVar>& vars);
std::vector<std::string> env_block(const std::vector<EnvVar>& vars);
// Looks a name up in a "K=V" block; nullptr when absent.
const char* find_env(const std::vector<std::string>& block, std::string_view name);

}  // namespace fm::launcher
