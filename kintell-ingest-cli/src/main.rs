//! `kintell-ingest`: the command line over the kintell-ingest library. It parses arguments, opens the store,
//! calls the library, renders the result and maps it to an exit code; nothing else.

mod cli;
mod commands;
mod exit;
mod output;
mod progress;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprint!(
                "{}",
                exit::render(&anyhow::Error::new(e).context("cannot start the async runtime"))
            );
            return exit::Exit::Failure.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code.into(),
        Err(e)
            if e.chain()
                .any(|c| c.downcast_ref::<output::Closed>().is_some()) =>
        {
            exit::Exit::Success.into()
        }
        Err(e) => {
            eprint!("{}", exit::render(&e));
            exit::exit_of(&e).into()
        }
    }
}
