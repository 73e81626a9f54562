//! `ceremony man` and `ceremony completions`: generated from the clap types.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use super::write_stdout;
use crate::cli::Cli;
use crate::error::CeremonyError;

/// `ceremony completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CeremonyError> {
    // Into memory first: clap_complete panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ceremony", &mut script);
    write_stdout(&script)
}

/// `ceremony man`: the page of the whole tool on stdout, or every page into `dir`.
pub fn run(dir: Option<&Path>) -> Result<(), CeremonyError> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let render = |man: &clap_mangen::Man| {
        let mut roff = Vec::new();
        man.render(&mut roff)
            .map_err(|e| CeremonyError::Internal(format!("rendering the manual page: {e}")))?;
        Ok::<_, CeremonyError>(roff)
    };
    let Some(dir) = dir else {
        return write_stdout(&render(&clap_mangen::Man::new(cmd))?);
    };
    let mut pages = Vec::new();
    collect_pages(&cmd, &mut pages);
    let pages: Vec<(PathBuf, clap_mangen::Man)> = pages
        .into_iter()
        .map(|c| {
            let man = clap_mangen::Man::new(c);
            (dir.join(man.get_filename()), man)
        })
        .collect();
    // All or nothing: refuse before writing if any page is there already.
    if let Some((path, _)) = pages.iter().find(|(p, _)| p.exists()) {
        return Err(CeremonyError::Usage {
            message: format!(
                "{} exists; ceremony man never overwrites a page",
                path.display()
            ),
            hint: "give --dir a directory that holds no ceremony pages yet".into(),
        });
    }
    for (path, man) in pages {
        let roff = render(&man)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &roff))
            .map_err(|e| CeremonyError::Usage {
                message: format!("cannot write {}: {e}", path.display()),
                hint: "give --dir an existing directory that holds no ceremony pages yet".into(),
            })?;
        println!("{}", path.display());
    }
    Ok(())
}

/// The command and every subcommand, each with its full name (ceremony-token-list).
fn collect_pages(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect_pages(sub, out);
    }
    out.push(cmd.clone());
}
