// Shell quoting and splitting.
//
// Every command fmlaunch hands to a shell (the remote login shell behind ssh/pdsh, the lines
// printed by --dry_run) is built from words quoted here, so an argument reaches the program exactly
// as given, whatever it holds (spaces, quotes, $, backticks, newlines, ';'). The quoting targets
// POSIX shells (sh, bash, dash, zsh): a word that is not plainly safe is wrapped in single quotes,
// each ' inside becoming '\''.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fm::launcher {

// One word, safe to paste into a POSIX shell.
std::string shell_quote(std::string_view word);

// Words quoted and joined with single spaces.
std::string shell_join(const std::vector<std::string>& words);

// Splits a string into words the way a POSIX shell (and Python's shlex.split) does: blanks
// separate words; '...' is literal; "..." keeps blanks and lets \ escape \ " $ ` and newline;
// a bare \ escapes the next character. No expansion of any kind. An unterminated quote is an
// InputError naming `where`.
std::vector<std::string> shell_split(std::string_view text, const std::string& where);

}  // namespace fm::launcher
