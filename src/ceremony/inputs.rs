//! What `run` (and `check`) reads and refuses before the token: a
//! continuing ceremony's previous output, the CSRs, the CRLs' revocations,
//! the inputs' manifest the witnesses approve, and the output path; and the
//! CSRs read again right before signing from them.

// The run's own vocabulary (its imports and modules), as in mod.rs.
use super::*;

/// What `before_the_token` read and checked.
pub struct Checked {
    /// Every CSR read and checked (empty without CSRs).
    pub intake: csr::Intake,
    /// The previous output a continuing ceremony continues, checked.
    pub continuation: Option<chain::Continuation>,
    /// Every input above and the plan's own, as one digest: what the
    /// witnesses approve, and what owns the journal and staging directory.
    pub inputs: Manifest,
    /// The CRLs this ceremony signs and what it revokes.
    pub revocations: crl::Revocations,
}

/// Everything `run` refuses before it opens the token, in its order: the
/// inputs, read and checked ([`read_inputs`]), then the output path (`out`,
/// when known) and any journal or staging directory beside it, which must
/// be these inputs' own. `check` calls it too, so that it exits 2 whenever
/// `run` would for the same plan and OUT, short of what only the token, the
/// PIN or the terminal can tell.
pub fn before_the_token(loaded: &LoadedPlan, out: Option<&Path>) -> Result<Checked, CeremonyError> {
    let checked = read_inputs(loaded)?;
    if let Some(out) = out {
        check_beside_out(out, &checked.inputs)?;
    }
    Ok(checked)
}

/// Reads and checks every input beyond the plan, touching nothing: the
/// previous output of a continuing ceremony (its files against SHA256SUMS,
/// its seal against its root), then every CSR (all or nothing); and makes
/// the inputs' manifest of them all.
pub fn read_inputs(loaded: &LoadedPlan) -> Result<Checked, CeremonyError> {
    let continuation = chain::read_previous(loaded)?;
    let only = continuation.as_ref().map(|c| c.selection.issued());
    let intake = csr::preflight(loaded, only.as_ref())?;
    if let Some(c) = &continuation {
        chain::check_brought_sa(loaded, c, &intake)?;
    }
    let revocations = crl::read(loaded, continuation.as_ref())?;
    let inputs = inputs_manifest(loaded, &intake, continuation.as_ref())?;
    Ok(Checked {
        intake,
        continuation,
        inputs,
        revocations,
    })
}

/// The output path, and that an unsealed journal or unfinished staging
/// directory beside it is these inputs' own (nothing touched if not).
pub fn check_beside_out(out: &Path, inputs: &Manifest) -> Result<(), CeremonyError> {
    write::check_output(out, &inputs.digest)?;
    audit::journal::check_owner(out, &inputs.digest)?;
    Ok(())
}

/// The manifest of the plan, its names file, the CSRs read and the
/// previous output continued (by the SHA-256 of its SHA256SUMS, which its
/// seal binds and which lists every file of it).
pub(super) fn inputs_manifest(
    loaded: &LoadedPlan,
    intake: &csr::Intake,
    continuation: Option<&chain::Continuation>,
) -> Result<Manifest, CeremonyError> {
    let mut inputs = loaded.inputs();
    intake.add_inputs(loaded, &mut inputs);
    if let Some(c) = continuation {
        let sums: [u8; 32] = hex::decode(&c.previous.sha256sums_sha256)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                CeremonyError::Internal("the previous output's SHA256SUMS hash is not hex".into())
            })?;
        let path = Path::new(&c.previous.output).join(crate::bundle::layout::SHA256SUMS);
        inputs.add_sha256(InputKind::Previous, &path.display().to_string(), sums);
    }
    Ok(inputs.manifest())
}

/// The CSRs read again and checked, right before signing from them: what is
/// signed is what was checked, and what the witnesses approved at the
/// preflight (`inputs`), or nothing is.
pub(super) fn reread_inputs(
    loaded: &LoadedPlan,
    inputs: &Manifest,
    continuation: Option<&chain::Continuation>,
) -> Result<csr::Intake, CeremonyError> {
    let only = continuation.map(|c| c.selection.issued());
    let intake = csr::preflight(loaded, only.as_ref())?;
    let now_read = inputs_manifest(loaded, &intake, continuation)?;
    if now_read.digest != inputs.digest {
        return Err(CeremonyError::Usage {
            message: format!(
                "the inputs changed since the preflight: their SHA-256 was {}, it is now {}; nothing was signed from them",
                hex::encode(inputs.digest),
                hex::encode(now_read.digest)
            ),
            hint: "put back the inputs the witnesses approved and run the same command again (the ceremony resumes); \
                   changed inputs are a new review: `ceremony check`, then another --out"
                .into(),
        });
    }
    Ok(intake)
}
