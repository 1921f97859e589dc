//! The machine a run was measured on, for the report: CPU, cores, memory, kernel, the file system
//! under the acceptance store, and the source the gateway was built from.

use std::path::Path;
use std::process::Command;

/// What the report says about where it was measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// `MemTotal` from /proc/meminfo.
    pub memory: String,
    /// `uname -srm`.
    pub kernel: String,
    /// The file system type and device under the run's directory, when the tool started the gateway.
    pub filesystem: Option<String>,
    /// `git log -1 --format=%h` of the workspace, with a note when the tree has uncommitted changes.
    pub commit: Option<String>,
}

impl Machine {
    /// Describes this machine; `store_dir` is the started gateway's directory, `workspace` the repository.
    pub fn describe(store_dir: Option<&Path>, workspace: &Path) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        Machine {
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory: field(&meminfo, "MemTotal").map_or_else(|| "unknown".into(), |kb| gib(&kb)),
            kernel: output("uname", &["-srm"]).unwrap_or_else(|| "unknown".into()),
            filesystem: store_dir.and_then(|dir| filesystem(&mounts, dir)),
            commit: commit(workspace),
        }
    }

    /// Whether the store sits where a synchronous commit costs nothing.
    pub fn store_in_memory(&self) -> bool {
        self.filesystem.as_deref().is_some_and(|fs| fs.starts_with("tmpfs") || fs.starts_with("ramfs"))
    }
}

/// The value of the first `key : value` line.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim().to_owned())
    })
}

/// `16318440 kB` → `15.6 GiB`.
fn gib(kb: &str) -> String {
    let number = kb.split_whitespace().next().and_then(|n| n.parse::<f64>().ok());
    number.map_or_else(|| kb.to_owned(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
}

/// The type and device of the mount that holds `dir` (the longest mount point that is a prefix).
fn filesystem(mounts: &str, dir: &Path) -> Option<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    mounts
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (device, point, kind) = (parts.next()?, parts.next()?, parts.next()?);
            dir.starts_with(point).then(|| (point.len(), format!("{kind} ({device}, mounted on {point})")))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, described)| described)
}

fn commit(workspace: &Path) -> Option<String> {
    let dir = workspace.to_str()?;
    let hash = output("git", &["-C", dir, "log", "-1", "--format=%h"])?;
    let dirty = output("git", &["-C", dir, "status", "--porcelain", "--untracked-files=no"]).is_some();
    Some(if dirty { format!("{hash} (with uncommitted changes)") } else { hash })
}

/// A command's trimmed stdout, if it ran, succeeded and printed something.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_proc_files() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(field(cpuinfo, "model name").as_deref(), Some("Intel(R) Xeon(R) CPU @ 2.20GHz"));
        assert_eq!(field(cpuinfo, "flags"), None);
        assert_eq!(gib("16777216 kB"), "16.0 GiB");
    }

    #[test]
    fn the_longest_mount_point_wins() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /tmpdata xfs rw 0 0\n";
        assert_eq!(filesystem(mounts, Path::new("/tmp/x")).as_deref(), Some("tmpfs (tmpfs, mounted on /tmp)"));
        assert_eq!(filesystem(mounts, Path::new("/tmpdata/x")).as_deref(), Some("xfs (/dev/vdb, mounted on /tmpdata)"));
        assert_eq!(filesystem(mounts, Path::new("/work")).as_deref(), Some("ext4 (/dev/vda, mounted on /)"));
        let machine = Machine {
            cpu: String::new(),
            cores: 1,
            memory: String::new(),
            kernel: String::new(),
            filesystem: filesystem(mounts, Path::new("/tmp/x")),
            commit: None,
        };
        assert!(machine.store_in_memory());
    }
}
