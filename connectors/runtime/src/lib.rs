//! The connector runtime: reads a partner's profile, builds its adapter and runs the three
//! loops every connector has — poll the partner's system into the outbox, drain the outbox to
//! the hub, follow the hub's feed back into the partner's system.

pub mod cli;
pub mod config;

use config::{AdapterConfig, ConnectorConfig};
use relais_connector_sdk::{Adapter, Hub, State};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// A connector ready to run.
pub struct Connector {
    pub config: ConnectorConfig,
    pub hub: Arc<Hub>,
    pub state: State,
    pub adapter: Arc<dyn Adapter>,
}

impl Connector {
    pub async fn open(config: ConnectorConfig) -> anyhow::Result<Self> {
        let bundle = relais_hub::pki::Bundle::read(&config.identity)?;
        let hub = Arc::new(Hub::new(
            &config.hub,
            bundle,
            &config.agent,
            config.purpose()?,
        ));
        let state = State::open(&config.state_dir).await?;
        let adapter: Arc<dyn Adapter> = match &config.adapter {
            Some(AdapterConfig::Csv(c)) => {
                Arc::new(relais_adapter_csv::CsvAdapter::new(c.as_ref().clone())?)
            }
            Some(AdapterConfig::Http(h)) => Arc::new(relais_adapter_http::HttpAdapter::new(
                h.as_ref().clone(),
                state.clone(),
            )?),
            Some(AdapterConfig::Sql(q)) => {
                Arc::new(relais_adapter_sql::SqlAdapter::new(q.as_ref().clone())?)
            }
            None => anyhow::bail!("the profile was not loaded with ConnectorConfig::load"),
        };
        Ok(Self {
            config,
            hub,
            state,
            adapter,
        })
    }

    /// Runs until the process is stopped; each loop restarts itself after an error.
    pub async fn run(&self) -> anyhow::Result<()> {
        let wake = Arc::new(Notify::new());
        let poll_every = Duration::from_secs(self.config.poll_seconds.max(1));
        let poller = {
            let (adapter, state, wake) = (self.adapter.clone(), self.state.clone(), wake.clone());
            tokio::spawn(async move {
                loop {
                    match adapter.poll(&state).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(writes = n, "new writes in the outbox");
                            wake.notify_one();
                        }
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "reading the partner's system failed")
                        }
                    }
                    tokio::time::sleep(poll_every).await;
                }
            })
        };
        let sender = {
            let (hub, state, wake, adapter) = (
                self.hub.clone(),
                self.state.clone(),
                wake.clone(),
                self.adapter.clone(),
            );
            tokio::spawn(async move {
                loop {
                    if let Err(e) = relais_connector_sdk::outbox::drain(
                        &hub,
                        &state,
                        &wake,
                        poll_every,
                        Some(adapter.as_ref()),
                    )
                    .await
                    {
                        tracing::warn!(error = %format!("{e:#}"), "outbox drain failed; restarting");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            })
        };
        let server = {
            let (adapter, state, wake) = (self.adapter.clone(), self.state.clone(), wake.clone());
            tokio::spawn(async move { adapter.serve(state, wake).await })
        };
        let follower = {
            let (hub, state, adapter) =
                (self.hub.clone(), self.state.clone(), self.adapter.clone());
            tokio::spawn(async move {
                loop {
                    if let Err(e) =
                        relais_connector_sdk::feed::follow(&hub, &state, adapter.as_ref(), false)
                            .await
                    {
                        tracing::warn!(error = %format!("{e:#}"), "applying the feed failed; restarting from the cursor");
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                }
            })
        };
        // The work queue's order, written beside the statuses, refreshed now and then (it
        // changes with time as well as with events: deadlines near, waits lengthen).
        let prioritiser = {
            let (hub, adapter) = (self.hub.clone(), self.adapter.clone());
            let every = self.config.queue_seconds;
            tokio::spawn(async move {
                if every == 0 {
                    std::future::pending::<()>().await;
                }
                loop {
                    match hub.work_queue(5_000).await {
                        Ok(queue) => {
                            if let Err(e) = adapter.prioritise(&queue).await {
                                tracing::warn!(error = %format!("{e:#}"), "writing the priorities failed");
                            }
                        }
                        Err(e) => {
                            tracing::info!(error = %e.message, code = ?e.code, "work queue not read; next try later")
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(every)).await;
                }
            })
        };
        // The outbox, dead letters and lag, for the telemetry gauges.
        let gauges = {
            let (hub, state) = (self.hub.clone(), self.state.clone());
            tokio::spawn(async move {
                if !relais_connector_sdk::telemetry::enabled() {
                    std::future::pending::<()>().await;
                }
                loop {
                    if let (Ok((outbox, dead)), Ok(cursor)) =
                        (state.counts().await, state.cursor().await)
                    {
                        let lag = hub.position().await.ok().map(|h| h.saturating_sub(cursor));
                        relais_connector_sdk::telemetry::record(outbox, dead, lag);
                    }
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
            })
        };
        let stop = async {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                },
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        };
        tokio::select! {
            r = gauges => r.map_err(anyhow::Error::from),
            r = prioritiser => r.map_err(anyhow::Error::from),
            r = poller => r.map_err(anyhow::Error::from),
            r = sender => r.map_err(anyhow::Error::from),
            r = follower => r.map_err(anyhow::Error::from),
            r = server => r.map_err(anyhow::Error::from).and_then(|r| r),
            () = stop => {
                tracing::info!("stopping: what is in the outbox stays there for the next run");
                Ok(())
            }
        }
    }

    /// The cursor, the hub's head (when reachable) and the lag, the outbox and the dead letters.
    pub async fn status(&self) -> anyhow::Result<Status> {
        let cursor = self.state.cursor().await?;
        let head = self.hub.position().await.ok();
        let (outbox, dead_letters) = self.state.counts().await?;
        Ok(Status {
            cursor,
            head,
            outbox,
            dead_letters,
            copies: self.state.copies().await?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    pub cursor: u64,
    /// None when the hub is out of reach.
    pub head: Option<u64>,
    pub outbox: u64,
    pub dead_letters: u64,
    pub copies: u64,
}
