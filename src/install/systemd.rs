//! systemd's tools: finding them on `$PATH`, and running them with their
//! command line shown the way a user would type it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{InstallError, Options};

/// Where systemd's tools are looked for when `$PATH` is not set at all.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The first executable file called `name` in the directories of `path_var`
/// (a `$PATH` value; [`DEFAULT_PATH`] when unset).
pub fn find_tool(name: &str, path_var: Option<&OsStr>) -> Option<PathBuf> {
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    std::env::split_paths(path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

pub(crate) fn root_args(options: &Options, root: &Path) -> Vec<OsString> {
    match options.root {
        Some(_) => {
            let mut arg = OsString::from("--root=");
            arg.push(root);
            vec![arg]
        }
        None => Vec::new(),
    }
}

pub(crate) fn require_tool(tool: &'static str, command: &'static str) -> Result<PathBuf, InstallError> {
    find_tool(tool, std::env::var_os("PATH").as_deref()).ok_or(InstallError::ToolMissing { tool, command })
}

/// Runs a tool with its output passed through to the user, after printing
/// the command line.
pub(crate) fn run_tool(out: &mut dyn Write, tool: &Path, args: &[OsString]) -> Result<(), InstallError> {
    let command_line = CommandLine(tool, args).to_string();
    let _ = writeln!(out, "$ {command_line}");
    // The tool writes to the same terminal: our lines must come first.
    let _ = out.flush();
    let status = Command::new(tool)
        .args(args)
        .status()
        .map_err(|source| InstallError::ToolSpawn {
            tool: tool.to_owned(),
            source,
        })?;
    if !status.success() {
        return Err(InstallError::ToolFailed { command_line, status });
    }
    Ok(())
}

/// A command line as the user would type it: the tool's name, not its path.
struct CommandLine<'a>(&'a Path, &'a [OsString]);

impl fmt::Display for CommandLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.0.file_name().unwrap_or(self.0.as_os_str());
        write!(f, "{}", name.to_string_lossy())?;
        for arg in self.1 {
            write!(f, " {}", arg.to_string_lossy())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;

    use super::*;
    use crate::install::layout::UNIT_NAME;

    #[test]
    fn find_tool_should_take_the_first_executable_in_path_and_ignore_other_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(&a).expect("mkdir");
        fs::create_dir_all(&b).expect("mkdir");
        fs::write(a.join("tool"), "not executable").expect("write");
        fs::write(b.join("tool"), "#!/bin/sh\n").expect("write");
        fs::set_permissions(b.join("tool"), Permissions::from_mode(0o755)).expect("chmod");
        let path = std::env::join_paths([&a, &b]).expect("join");
        assert_eq!(find_tool("tool", Some(&path)), Some(b.join("tool")));
        assert_eq!(find_tool("other", Some(&path)), None);
        assert_eq!(find_tool("tool", Some(a.as_os_str())), None);
    }

    #[test]
    fn command_lines_should_be_printed_with_the_tool_name_only() {
        let args = ["--root=/x".into(), "enable".into(), UNIT_NAME.into()];
        assert_eq!(
            CommandLine(Path::new("/usr/bin/systemctl"), &args).to_string(),
            "systemctl --root=/x enable majortom.service"
        );
    }
}
