//! `ceremony token probe`: what a plan needs to know about a token before the
//! ceremony, read with C_GetTokenInfo, C_GetMechanismList and
//! C_GetMechanismInfo only (no login, nothing written). The signing path for
//! each key type is the one `run` would take: [`super::sign::choose_mechanism`].

use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Limit;

use super::{Pkcs11Token, choose_mechanism};
use crate::keytype::KeyType;
use crate::token::TokenError;

/// What the token says about itself and what the ceremony would use of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// (what, yes/no) from the token's flags.
    pub flags: Vec<(&'static str, bool)>,
    /// (most, open now), or why unknown.
    pub sessions: String,
    pub rw_sessions: String,
    /// The user PIN's length, at least and at most, as the token says.
    pub pin_len: (usize, usize),
    /// Free of total bytes of private memory, when the token says.
    pub private_memory: Option<(usize, usize)>,
    /// Per key type: the signing path `run` would take, or what is missing.
    pub signing: Vec<(KeyType, Result<&'static str, String>)>,
    /// CKM_RSA_PKCS_KEY_PAIR_GEN's key sizes (min, max bits), when listed.
    pub rsa_bits: Option<(usize, usize)>,
    /// Mechanisms the ceremony does not use, and whether the token lists them:
    /// the one-step ones it prefers not to depend on, and key wrapping.
    pub others: Vec<(&'static str, bool)>,
}

/// The mechanisms shown as present or not beside the ones `run` uses.
const OTHERS: [(&str, MechanismType); 8] = [
    ("CKM_ECDSA_SHA256", MechanismType::ECDSA_SHA256),
    ("CKM_ECDSA_SHA384", MechanismType::ECDSA_SHA384),
    ("CKM_RSA_PKCS_PSS", MechanismType::RSA_PKCS_PSS),
    (
        "CKM_SHA256_RSA_PKCS_PSS",
        MechanismType::SHA256_RSA_PKCS_PSS,
    ),
    ("CKM_RSA_PKCS_OAEP", MechanismType::RSA_PKCS_OAEP),
    ("CKM_AES_KEY_GEN", MechanismType::AES_KEY_GEN),
    ("CKM_AES_KEY_WRAP", MechanismType::AES_KEY_WRAP),
    ("CKM_AES_KEY_WRAP_PAD", MechanismType::AES_KEY_WRAP_PAD),
];

fn limit(l: Limit, open: Option<u64>) -> String {
    let open = open.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    match l {
        Limit::Max(m) => format!("at most {m}, {open} open now"),
        Limit::Infinite => format!("no limit, {open} open now"),
        Limit::Unavailable => format!("limit not given, {open} open now"),
    }
}

impl Pkcs11Token {
    /// Reads what `ceremony token probe` prints; logs in to nothing.
    pub fn probe(&self) -> Result<Probe, TokenError> {
        let info = self
            .ctx
            .get_token_info(self.slot)
            .map_err(self.err("C_GetTokenInfo"))?;
        let list = self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(self.err("C_GetMechanismList"))?;
        let rsa = list
            .contains(&MechanismType::RSA_PKCS_KEY_PAIR_GEN)
            .then(|| {
                self.ctx
                    .get_mechanism_info(self.slot, MechanismType::RSA_PKCS_KEY_PAIR_GEN)
                    .ok()
            })
            .flatten()
            .map(|i| (i.min_key_size(), i.max_key_size()));
        let signing = KeyType::ALL
            .iter()
            .map(|&kt| {
                let chosen = choose_mechanism(kt, &list, rsa.map(|(_, max)| max))
                    .map(|(_, name)| name)
                    .map_err(|(what, missing)| format!("cannot {what}: it lacks {missing}"));
                (kt, chosen)
            })
            .collect();
        Ok(Probe {
            flags: vec![
                ("login required", info.login_required()),
                (
                    "PIN pad (protected authentication path)",
                    info.protected_authentication_path(),
                ),
                ("user PIN set", info.user_pin_initialized()),
                ("user PIN: few tries left", info.user_pin_count_low()),
                ("user PIN: final try", info.user_pin_final_try()),
                ("user PIN locked", info.user_pin_locked()),
                ("user PIN must be changed", info.user_pin_to_be_changed()),
                ("SO PIN locked", info.so_pin_locked()),
                ("random number generator", info.rng()),
                ("write-protected", info.write_protected()),
            ],
            sessions: limit(info.max_session_count(), info.session_count()),
            rw_sessions: limit(info.max_rw_session_count(), info.rw_session_count()),
            pin_len: (info.min_pin_length(), info.max_pin_length()),
            private_memory: info.free_private_memory().zip(info.total_private_memory()),
            signing,
            rsa_bits: rsa,
            others: OTHERS
                .iter()
                .map(|(name, m)| (*name, list.contains(m)))
                .collect(),
        })
    }
}

impl Probe {
    /// The lines `token probe` prints (after the token's identity).
    pub fn lines(&self) -> Vec<String> {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut v = vec!["Flags:".to_string()];
        v.extend(
            self.flags
                .iter()
                .map(|(what, b)| format!("  {what}: {}", yes(*b))),
        );
        v.push(format!("Sessions: {}", self.sessions));
        v.push(format!("Read-write sessions: {}", self.rw_sessions));
        let (min, max) = self.pin_len;
        // Some tokens give no maximum (kryoptic says 0).
        v.push(if max >= min && max < u32::MAX as usize {
            format!("User PIN length: {min} to {max} characters (as the token says)")
        } else {
            format!("User PIN length: at least {min} characters (the token gives no maximum)")
        });
        if let Some((free, total)) = self.private_memory {
            v.push(format!("Private memory: {free} of {total} bytes free"));
        }
        if let Some((min, max)) = self.rsa_bits {
            v.push(format!("RSA key generation: {min} to {max} bits"));
        }
        v.push("Signing path `ceremony run` would take, per key type:".into());
        for (kt, chosen) in &self.signing {
            v.push(match chosen {
                Ok(name) => format!("  {:<11} {name}", kt.name()),
                Err(why) => format!("  {:<11} NOT USABLE: {why}", kt.name()),
            });
        }
        v.push(
            "Other mechanisms (not used by `ceremony run`; the one-step ECDSA and PSS are listed for comparison,"
                .into(),
        );
        v.push("  key wrapping for a backup under a trusted wrapping key):".into());
        for (name, b) in &self.others {
            v.push(format!("  {name:<24} {}", yes(*b)));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One line per key type, the missing mechanism named; wrapping shown.
    #[test]
    fn the_report_names_each_signing_path_and_what_is_missing() {
        let list = [
            MechanismType::ECC_KEY_PAIR_GEN,
            MechanismType::ECDSA,
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
            MechanismType::RSA_PKCS,
            MechanismType::AES_KEY_WRAP_PAD,
        ];
        let probe = Probe {
            flags: vec![("login required", true)],
            sessions: limit(Limit::Max(16), Some(1)),
            rw_sessions: limit(Limit::Unavailable, None),
            pin_len: (4, 255),
            private_memory: None,
            signing: KeyType::ALL
                .iter()
                .map(|&kt| {
                    (
                        kt,
                        choose_mechanism(kt, &list, Some(2048))
                            .map(|(_, n)| n)
                            .map_err(|(w, m)| format!("cannot {w}: it lacks {m}")),
                    )
                })
                .collect(),
            rsa_bits: Some((1024, 2048)),
            others: OTHERS.iter().map(|(n, m)| (*n, list.contains(m))).collect(),
        };
        let text = probe.lines().join("\n");
        let no_max = Probe {
            pin_len: (8, 0),
            ..probe.clone()
        };
        assert!(no_max.lines().contains(
            &"User PIN length: at least 8 characters (the token gives no maximum)".into()
        ));
        for want in [
            "  login required: yes",
            "Sessions: at most 16, 1 open now",
            "Read-write sessions: limit not given, unknown open now",
            "User PIN length: 4 to 255 characters",
            "RSA key generation: 1024 to 2048 bits",
            "  ecdsa-p256  CKM_ECDSA over a host SHA-256",
            "  ecdsa-p384  CKM_ECDSA over a host SHA-384",
            "  rsa-2048    CKM_RSA_PKCS with a host-built DigestInfo (SHA-256)",
            "  rsa-4096    NOT USABLE: cannot generate rsa-4096 keys: it lacks RSA keys of 4096 bits (its maximum is 2048)",
            "  CKM_AES_KEY_WRAP_PAD     yes",
            "  CKM_ECDSA_SHA256         no",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }
}
