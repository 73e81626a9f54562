//! An intermediate's rotation to a new token key, one stage per continuing
//! ceremony: *stage* (a new key and certificate; trust files hold the old
//! then the new; leaves from the old), *promote* (leaves from the new; trust
//! files hold the new then the old), *distrust* (only the new). The stage
//! an output left each rotation at is in its continuation.json; the next
//! ceremony continues from there or refuses. Pure.

use crate::audit::chain::RotationRecord;
use crate::plan::{CaRole, RotateSpec, RotateStage, default_new_label};

/// One CA's rotation as this ceremony runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub role: CaRole,
    pub stage: RotateStage,
    pub old_label: String,
    pub new_label: String,
}

impl Rotation {
    /// The label of the key that signs this ceremony's leaves.
    pub fn signing_label(&self) -> &str {
        match self.stage {
            RotateStage::Stage => &self.old_label,
            RotateStage::Promote | RotateStage::Distrust => &self.new_label,
        }
    }

    /// The label of the other key its trust files hold (None at distrust).
    pub fn other_label(&self) -> Option<&str> {
        match self.stage {
            RotateStage::Stage => Some(&self.new_label),
            RotateStage::Promote => Some(&self.old_label),
            RotateStage::Distrust => None,
        }
    }

    /// What `check` says of it.
    pub fn describe(&self) -> String {
        let (role, new) = (self.role.name(), &self.new_label);
        let signs = self.signing_label();
        match (self.stage, self.other_label()) {
            (RotateStage::Stage, Some(other)) => format!(
                "rotation of the {role} CA, stage: a new key under \"{new}\" (made unless it is there); leaves signed by \"{signs}\"; its trust files hold \"{signs}\" then \"{other}\""
            ),
            (_, Some(other)) => format!(
                "rotation of the {role} CA, promote: leaves signed by \"{signs}\"; its trust files hold \"{signs}\" then \"{other}\""
            ),
            (_, None) => format!(
                "rotation of the {role} CA, distrust: its trust files hold only \"{new}\", which signs the leaves; \"{}\" stays on the token, unused",
                self.old_label
            ),
        }
    }

    pub fn record(&self) -> RotationRecord {
        RotationRecord {
            ca: self.role.name().into(),
            stage: self.stage,
            old_label: self.old_label.clone(),
            new_label: self.new_label.clone(),
        }
    }
}

/// What the plan names that the rotation needs.
pub struct Ctx<'a> {
    /// The ceremony's name (the default new label's suffix).
    pub ceremony: &'a str,
    /// The previous output, as the plan names it (for messages).
    pub previous: &'a str,
    /// The plan's label of a CA.
    pub label: &'a dyn Fn(CaRole) -> String,
}

/// The plan as this ceremony runs it: each rotated CA under the label of
/// the key that signs its leaves (a finished rotation's: the new key).
pub fn with_signing_labels(
    mut loaded: crate::plan::LoadedPlan,
    rotations: &[Rotation],
) -> crate::plan::LoadedPlan {
    for r in rotations {
        for spec in loaded.plan.cas.iter_mut().filter(|s| s.role == r.role) {
            spec.label = r.signing_label().to_string();
        }
    }
    loaded
}

/// The previous output's certificate of a CA, for `carry_current`; None
/// when a rotation made another key sign there (at promote: the old one).
/// (A CA not rotating gets it always: `carry_current` refuses another key's.)
pub fn previous_of_same_key<'a>(
    c: &'a super::chain::Continuation,
    state: &crate::issue::ca::CaState,
) -> Option<&'a [u8]> {
    use der::Decode;
    let der = c.cas.get(&state.role)?;
    let rotating = c.rotations.iter().any(|r| r.role == state.role);
    let same_key = x509_cert::Certificate::from_der(der).is_ok_and(|p| {
        p.tbs_certificate().subject_public_key_info()
            == state.cert.tbs_certificate().subject_public_key_info()
    });
    (!rotating || same_key).then_some(der.as_slice())
}

/// The typed record of the stage run: the signing certificate and what the
/// trust files hold.
pub fn event(r: &Rotation, state: &crate::issue::ca::CaState) -> crate::audit::Event {
    let sha = |d: &[u8]| hex::encode(crate::x509::sha256(d));
    crate::audit::Event::CaRotation {
        ca: r.role.name().into(),
        stage: r.stage.name().into(),
        old_label: r.old_label.clone(),
        new_label: r.new_label.clone(),
        signing_sha256: sha(&state.der),
        trusted_sha256: std::iter::once(&state.der)
            .chain(&state.also_trusted)
            .map(|d| sha(d))
            .collect(),
    }
}

/// Before anything is made: each key a stage finds is on the token (a
/// missing one would be generated anew, which is not what promote or
/// distrust mean), and what is under the other label is this plan's.
pub fn preflight(
    token: &dyn crate::token::Token,
    plan: &crate::plan::ValidPlan,
    rotations: &[Rotation],
) -> Result<(), crate::error::CeremonyError> {
    for r in rotations {
        let Some(spec) = plan.cas.iter().find(|s| s.role == r.role) else {
            continue;
        };
        let mut must = Vec::new();
        if r.stage != RotateStage::Stage {
            must.push(&r.new_label);
        }
        if r.stage == RotateStage::Promote {
            must.push(&r.old_label);
        }
        for label in must {
            if token.find_key_pair(label, spec.key)?.is_none() {
                return Err(crate::error::CeremonyError::Usage {
                    message: format!(
                        "rotate: the {} CA's key \"{label}\" is not on the token, yet the rotation is at {}",
                        r.role.name(),
                        r.stage.name()
                    ),
                    hint: "run the rotation's stages on the token that staged it, in order; nothing was touched".into(),
                });
            }
        }
        if let Some(other) = r.other_label() {
            let mut o = spec.clone();
            o.label = other.to_string();
            crate::issue::ca::preflight_label(token, &o)?;
        }
    }
    Ok(())
}

/// The CAs whose writes a resume looks through for one cut short: at a
/// stage, the rotated CA under its new label, the only key and certificate
/// of that CA the stage makes (a certificate signed and not yet stored is
/// known by its CA's role only: the old CA's certificate must not be taken
/// for it); otherwise under the label of the key that signs.
pub fn recovery_specs(
    cas: &[crate::plan::CaSpec],
    rotations: &[Rotation],
) -> Vec<crate::plan::CaSpec> {
    let mut all = cas.to_vec();
    for r in rotations.iter().filter(|r| r.stage == RotateStage::Stage) {
        for spec in all.iter_mut().filter(|s| s.role == r.role) {
            spec.label = r.new_label.clone();
        }
    }
    all
}

fn role_of(name: &str) -> Result<CaRole, String> {
    CaRole::INTERMEDIATES
        .into_iter()
        .find(|r| r.name() == name)
        .ok_or_else(|| format!("names an unknown CA \"{name}\""))
}

/// The rotations this ceremony runs or carries, from those the previous
/// output left and the plan's `[rotate]`; Err: one line saying why the
/// plan's stage cannot follow the previous output's.
pub fn next(
    previous: &[RotationRecord],
    plan: Option<&RotateSpec>,
    ctx: &Ctx<'_>,
) -> Result<Vec<Rotation>, String> {
    let mut out = Vec::new();
    let mut planned_seen = false;
    for rec in previous {
        let role = role_of(&rec.ca).map_err(|e| format!("its rotation record {e}"))?;
        let before = Rotation {
            role,
            stage: rec.stage,
            old_label: rec.old_label.clone(),
            new_label: rec.new_label.clone(),
        };
        let mine = plan.filter(|p| p.role == role);
        if mine.is_some() {
            planned_seen = true;
        }
        out.push(match (rec.stage, mine) {
            // A finished rotation is carried: the CA's key is the new one.
            (RotateStage::Distrust, None) => before,
            (RotateStage::Distrust, Some(p)) => match p.stage {
                RotateStage::Distrust => before,
                RotateStage::Stage => staged(p, ctx, rec.new_label.clone())?,
                RotateStage::Promote => return Err(no_staged_key(p, ctx)),
            },
            (at, None) => {
                return Err(format!(
                    "{} left the {} CA's rotation at {}: continue it with [rotate] ca = \"{}\", stage = \"{}\"",
                    ctx.previous,
                    rec.ca,
                    at.name(),
                    rec.ca,
                    match at {
                        RotateStage::Stage => "promote",
                        _ => "distrust",
                    }
                ));
            }
            (at, Some(p)) => {
                if let Some(l) = p.new_label.as_ref().filter(|l| **l != rec.new_label) {
                    return Err(format!(
                        "rotate.new_label is \"{l}\", but the key {} staged is \"{}\": leave new_label out or give that one",
                        ctx.previous, rec.new_label
                    ));
                }
                match (at, p.stage) {
                    (RotateStage::Stage, RotateStage::Distrust) => {
                        return Err(format!(
                            "rotate.stage = \"distrust\": the {} CA's new key was staged in {} but never promoted; promote it first (stage = \"promote\")",
                            rec.ca, ctx.previous
                        ));
                    }
                    (RotateStage::Promote, RotateStage::Stage) => {
                        return Err(format!(
                            "rotate.stage = \"stage\": {} promoted the {} CA's new key already; continue with stage = \"promote\" or \"distrust\"",
                            ctx.previous, rec.ca
                        ));
                    }
                    (_, stage) => Rotation { stage, ..before },
                }
            }
        });
    }
    if let Some(p) = plan.filter(|_| !planned_seen) {
        match p.stage {
            RotateStage::Stage => out.push(staged(p, ctx, (ctx.label)(p.role))?),
            _ => return Err(no_staged_key(p, ctx)),
        }
    }
    Ok(out)
}

fn staged(p: &RotateSpec, ctx: &Ctx<'_>, old_label: String) -> Result<Rotation, String> {
    let new_label = p
        .new_label
        .clone()
        .unwrap_or_else(|| default_new_label(&(ctx.label)(p.role), ctx.ceremony));
    if new_label == old_label {
        return Err(format!(
            "rotate.new_label: \"{new_label}\" is the label of the {} CA's current key; give the new key another",
            p.role.name()
        ));
    }
    Ok(Rotation {
        role: p.role,
        stage: RotateStage::Stage,
        old_label,
        new_label,
    })
}

fn no_staged_key(p: &RotateSpec, ctx: &Ctx<'_>) -> String {
    format!(
        "rotate.stage = \"{}\": {} staged no new key for the {} CA; stage one first (stage = \"stage\")",
        p.stage.name(),
        ctx.previous,
        p.role.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(r: CaRole) -> String {
        format!("{}-ca", r.name())
    }

    fn run(prev: &[RotationRecord], stage: Option<RotateStage>) -> Result<Vec<Rotation>, String> {
        let spec = stage.map(|stage| RotateSpec {
            role: CaRole::Kubernetes,
            stage,
            new_label: None,
        });
        next(
            prev,
            spec.as_ref(),
            &Ctx {
                ceremony: "c2",
                previous: "c1",
                label: &label,
            },
        )
    }

    fn rec(stage: RotateStage) -> RotationRecord {
        RotationRecord {
            ca: "kubernetes".into(),
            stage,
            old_label: "kubernetes-ca".into(),
            new_label: "kubernetes-ca-c2".into(),
        }
    }

    #[test]
    fn the_stages_follow_each_other_and_a_finished_rotation_is_carried() {
        use RotateStage::*;
        let r = run(&[], Some(Stage)).unwrap();
        assert_eq!(r[0].record(), rec(Stage));
        assert_eq!(r[0].signing_label(), "kubernetes-ca");
        assert_eq!(r[0].other_label(), Some("kubernetes-ca-c2"));
        let r = run(&[rec(Stage)], Some(Promote)).unwrap();
        assert_eq!(r[0].record(), rec(Promote));
        assert_eq!(r[0].signing_label(), "kubernetes-ca-c2");
        assert_eq!(r[0].other_label(), Some("kubernetes-ca"));
        assert_eq!(
            r[0].describe(),
            "rotation of the kubernetes CA, promote: leaves signed by \"kubernetes-ca-c2\"; its trust files hold \"kubernetes-ca-c2\" then \"kubernetes-ca\""
        );
        // A stage may run again (more nodes, a retry).
        assert_eq!(run(&[rec(Stage)], Some(Stage)).unwrap()[0].stage, Stage);
        let r = run(&[rec(Promote)], Some(Distrust)).unwrap();
        assert_eq!(
            (r[0].signing_label(), r[0].other_label()),
            ("kubernetes-ca-c2", None)
        );
        // Later ceremonies carry the finished rotation (the key's label).
        assert_eq!(
            run(&[rec(Distrust)], None).unwrap()[0].record(),
            rec(Distrust)
        );
        // A second rotation starts from the new key.
        let mut next = rec(Distrust);
        next.new_label = "kubernetes-ca-c1".into();
        let again = run(&[next], Some(Stage)).unwrap();
        assert_eq!(again[0].old_label, "kubernetes-ca-c1");
        assert_eq!(again[0].new_label, "kubernetes-ca-c2");
        // ... under a label other than its current key's.
        assert_eq!(
            run(&[rec(Distrust)], Some(Stage)).unwrap_err(),
            "rotate.new_label: \"kubernetes-ca-c2\" is the label of the kubernetes CA's current key; give the new key another"
        );
    }

    #[test]
    fn an_out_of_order_stage_is_refused_in_one_line() {
        use RotateStage::*;
        let e = |prev: &[RotationRecord], s| run(prev, s).unwrap_err();
        assert_eq!(
            e(&[], Some(Promote)),
            "rotate.stage = \"promote\": c1 staged no new key for the kubernetes CA; stage one first (stage = \"stage\")"
        );
        assert_eq!(
            e(&[], Some(Distrust)),
            "rotate.stage = \"distrust\": c1 staged no new key for the kubernetes CA; stage one first (stage = \"stage\")"
        );
        assert_eq!(
            e(&[rec(Stage)], Some(Distrust)),
            "rotate.stage = \"distrust\": the kubernetes CA's new key was staged in c1 but never promoted; promote it first (stage = \"promote\")"
        );
        assert_eq!(
            e(&[rec(Promote)], Some(Stage)),
            "rotate.stage = \"stage\": c1 promoted the kubernetes CA's new key already; continue with stage = \"promote\" or \"distrust\""
        );
        assert_eq!(
            e(&[rec(Stage)], None),
            "c1 left the kubernetes CA's rotation at stage: continue it with [rotate] ca = \"kubernetes\", stage = \"promote\""
        );
        assert_eq!(
            e(&[rec(Promote)], None),
            "c1 left the kubernetes CA's rotation at promote: continue it with [rotate] ca = \"kubernetes\", stage = \"distrust\""
        );
    }

    #[test]
    fn a_resume_at_a_stage_looks_under_the_new_label_only() {
        use RotateStage::*;
        let plan = crate::plan::load(
            std::path::Path::new("ceremony/plans/demo.toml"),
            std::time::SystemTime::now(),
        )
        .unwrap()
        .plan;
        let labels = |stage| {
            let mut r = rec(stage);
            r.old_label = "demo-kubernetes-ca-2026".into();
            let rot = run(&[r], Some(stage)).unwrap();
            recovery_specs(&plan.cas, &rot)
                .iter()
                .map(|s| s.label.clone())
                .collect::<Vec<_>>()
        };
        // One spec per CA: a certificate pending by role is never checked
        // against the old CA's (which the stage does not write).
        let staged = labels(Stage);
        assert_eq!(staged.len(), plan.cas.len());
        assert!(staged.contains(&"kubernetes-ca-c2".to_string()));
        assert!(!staged.contains(&"demo-kubernetes-ca-2026".to_string()));
        assert!(labels(Promote).contains(&"demo-kubernetes-ca-2026".to_string()));
    }
}
