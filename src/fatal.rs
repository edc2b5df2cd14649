//! The top-level error of the process (`fatal`: named apart from the `error!` log macro): printed
//! once with its chain, mapped to the process exit code.

use crate::config::ConfigError;
use crate::config::flags::FlagError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", flag_list(.0))]
    Flags(Vec<FlagError>),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("waiting for signals: {0}")]
    Signals(nix::Error),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error(transparent)]
    Startup(#[from] crate::node::startup::StartupError),
    #[error("container runtime client: {0}")]
    Runtime(crate::cri::CriError),
    #[error("starting the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("imageServiceEndpoint: {0}")]
    ImageEndpoint(String),
    #[error("the serving certificate")]
    Certs(#[source] crate::certs::CertError),
}

fn flag_list(errs: &[FlagError]) -> String {
    let mut s = String::from("invalid flags:");
    for e in errs {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s.push_str("\n(run tinylet --help for the flags)");
    s
}

impl Error {
    /// 2 for usage and configuration errors (the operator must fix something), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Flags(_) | Error::Config(_) => 2,
            Error::ImageEndpoint(_) => 2,
            Error::Signals(_)
            | Error::Server(_)
            | Error::Startup(_)
            | Error::Runtime(_)
            | Error::Thread(..)
            | Error::Certs(_) => 1,
        }
    }

    /// The error and its sources, one per line.
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(e) = src {
            s.push_str(&format!("\n  caused by: {e}"));
            src = e.source();
        }
        s
    }
}
