// Durable file operations for the checkpoint protocol (POSIX).
//
// A checkpoint survives a crash only if every file and every directory entry is on disk before
// the step that makes it visible: write to a temporary name, fsync the file, rename, fsync the
// directory. These helpers do exactly that and report failures as RuntimeFault naming the path
// and the system's reason ("No space left on device", "File too large", ...).
#pragma once

#include <cstdint>
#include <string>

namespace fm::checkpoint {

// fsync of a directory, so renames and new entries in it are durable.
void fsync_dir(const std::string& dir);

// Writes `text` to `path` durably and atomically: `path`.tmp-<pid>, fsync, rename, fsync of the
// directory. A reader sees the old content or the new one, never a part.
void write_file_atomic(const std::string& path, const std::string& text);

// The whole content of a file; InputError naming it when unreadable.
std::string read_file(const std::string& path);

// Removes a directory tree; returns false (and leaves what it could not remove) on failure.
bool remove_tree(const std::string& path, std::string* why = nullptr);

// A unique suffix for temporary names: pid, time and randomness, in hex.
std::string unique_token();

}  // namespace fm::checkpoint
