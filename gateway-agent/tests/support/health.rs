#![allow(dead_code)] // each test binary uses part of the harness

//! A real `grpc.health.v1.Health` server (tonic-health), whose services' statuses a test
//! switches, for active gRPC health checks.

use std::net::SocketAddr;

use tonic_health::{ServingStatus, server::HealthReporter};

pub struct GrpcHealth {
    pub addr: SocketAddr,
    reporter: HealthReporter,
    task: tokio::task::JoinHandle<()>,
}

impl GrpcHealth {
    /// Serves on `addr` (h2c), with `service` reporting `status`; any other service name is
    /// unknown (`NOT_FOUND`), as gRPC's health protocol says.
    pub async fn start_on(
        addr: SocketAddr,
        service: &str,
        status: ServingStatus,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (reporter, server) = tonic_health::server::health_reporter();
        reporter.set_service_status(service, status).await;
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self {
            addr,
            reporter,
            task,
        })
    }

    pub async fn set(&self, service: &str, status: ServingStatus) {
        self.reporter.set_service_status(service, status).await;
    }
}

impl Drop for GrpcHealth {
    fn drop(&mut self) {
        self.task.abort();
    }
}
