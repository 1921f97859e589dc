//! Configuration watching (配置热加载): a change to the config file, an adapter, a mapping or the
//! matter list triggers a reload after a short quiet period, so an editor's several writes make
//! one reload. The reload validates everything first; on error the old set keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use super::Gateway;

/// Writes arriving within this time make one reload.
const QUIET: Duration = Duration::from_millis(300);

/// A registered watch: paths are watched from the moment this exists.
pub struct ConfigWatch {
    _watcher: RecommendedWatcher,
    changes: mpsc::UnboundedReceiver<()>,
}

/// Registers the watch on every configuration path now (so no change after start-up is missed).
pub fn register(sources: &[PathBuf]) -> Option<ConfigWatch> {
    let (tx, changes) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reads (our own reloads open every file) are not changes.
        if let Ok(event) = event
            && (event.kind.is_modify() || event.kind.is_create() || event.kind.is_remove())
        {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(error = %err, "Configuration files cannot be watched; reload with SIGHUP or POST /admin/reload.");
            return None;
        }
    };
    for path in sources {
        // A file is watched through its directory: editors that save by renaming a new file over
        // the old one would otherwise end the watch.
        let (path, mode) = match (path.is_dir(), path.parent()) {
            (true, _) => (path.as_path(), RecursiveMode::Recursive),
            (false, Some(parent)) => (parent, RecursiveMode::NonRecursive),
            (false, None) => (path.as_path(), RecursiveMode::NonRecursive),
        };
        if let Err(err) = watcher.watch(path, mode) {
            tracing::warn!(path = %path.display(), error = %err, "A configuration path cannot be watched.");
        }
    }
    tracing::info!(paths = sources.len(), "Watching the configuration for changes.");
    Some(ConfigWatch { _watcher: watcher, changes })
}

/// Reloads on every burst of changes until shutdown.
pub async fn run(gateway: Arc<Gateway>, mut watch: ConfigWatch, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            changed = watch.changes.recv() => {
                if changed.is_none() {
                    break;
                }
                // Let the burst of writes settle.
                while let Ok(Some(())) = tokio::time::timeout(QUIET, watch.changes.recv()).await {}
                // Errors are logged and counted by reload; the old configuration keeps serving.
                let _ = gateway.reload("file change").await;
            }
            _ = shutdown.changed() => break,
        }
    }
}
