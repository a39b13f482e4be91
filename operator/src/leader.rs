//! Leader election through a `coordination.k8s.io` Lease, so two operator replicas never both
//! reconcile. The work runs while this process holds the lease and is stopped the moment it
//! loses it; it starts again if the lease comes back.

use std::future::Future;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;
use tracing::{info, warn};

/// Where the lease lives and who we are.
#[derive(Clone, Debug)]
pub struct Election {
    pub namespace: String,
    pub lease: String,
    pub identity: String,
}

/// Seconds a lease stays valid after its last renewal, and how early the holder renews it.
const LEASE_SECONDS: u64 = 15;
const RENEW_EARLY_SECONDS: u64 = 5;

/// Runs `work` whenever this process leads, until `shutdown` turns true. `work` gets a future
/// that resolves when it must stop (leadership lost, or shutdown); the lease is released on
/// the way out, so a successor need not wait for it to expire.
pub async fn lead<W, F>(
    client: Client,
    election: &Election,
    mut shutdown: watch::Receiver<bool>,
    mut work: W,
) -> Result<(), kube_lease_manager::LeaseManagerError>
where
    W: FnMut(Box<dyn Future<Output = ()> + Send + Sync + Unpin>) -> F,
    F: Future<Output = ()>,
{
    let manager = LeaseManagerBuilder::new(client, &election.lease)
        .with_namespace(&election.namespace)
        .with_identity(&election.identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(RENEW_EARLY_SECONDS)
        .build()
        .await?;
    let (mut leading, task) = manager.watch().await;
    info!(lease = %format!("{}/{}", election.namespace, election.lease), identity = %election.identity, "waiting for the lease");
    loop {
        tokio::select! {
            result = leading.wait_for(|leader| *leader) => if result.is_err() { break },
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        info!("holding the lease: reconciling");
        let (mut lost, mut stop) = (leading.clone(), shutdown.clone());
        let until = Box::pin(async move {
            tokio::select! {
                _ = lost.wait_for(|leader| !*leader) => {},
                _ = stop.wait_for(|stop| *stop) => {},
            }
        });
        work(Box::new(until)).await;
        if *shutdown.borrow() {
            break;
        }
        warn!("lost the lease: stopped reconciling");
    }
    drop(leading);
    match task.await {
        Ok(result) => result.map(|_| ()),
        Err(e) => {
            warn!("the lease manager stopped abnormally: {e}");
            Ok(())
        }
    }
}
