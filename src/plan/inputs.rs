//! The inputs of a ceremony as one digest, the value the witnesses approve:
//! the plan, its names file, every file read from the nodes' CSR trees
//! (CSRs, the keys, service-account files and partial kubeconfigs brought
//! beside them), every user's CSR, and the previous output a continuing
//! ceremony continues. Everything signed is decided from these, so a change
//! to any (a worker added to the names file, a CSR replaced) changes the
//! digest; the plan's own SHA-256 covers the plan alone.
//!
//! The manifest is one line per input, `<sha256>  <kind> <path>`, the path
//! as the plan names it (relative to the plan's directory), in a canonical
//! order: by kind group, then by path. The digest is the SHA-256 of the
//! manifest's text, which OUT keeps as `inputs.sha256`. Pure: callers read
//! the files and hand over their bytes or hashes.

use sha2::{Digest, Sha256};

/// What an input is, as the manifest names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The plan file itself.
    Plan,
    /// `cluster.workers.names_file`.
    Names,
    /// The previous output's SHA256SUMS (a continuing ceremony).
    Previous,
    /// A node's CSR.
    Csr,
    /// A private key a node brought beside its CSR.
    Key,
    /// A partial kubeconfig a node brought beside its CSR.
    Kubeconfig,
    /// A control-plane node's own `pki/sa.pub`.
    SaPublic,
    /// A control-plane node's own `pki/sa.key`.
    SaKey,
    /// Any other file of a node's tree the checks used.
    NodeFile,
    /// A `[[users]]` entry's CSR.
    UserCsr,
    /// A delegated CA's certificate request (`ca.<name>.csr`).
    CaCsr,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Plan => "plan",
            Kind::Names => "names",
            Kind::Previous => "previous",
            Kind::Csr => "csr",
            Kind::Key => "key",
            Kind::Kubeconfig => "kubeconfig",
            Kind::SaPublic => "sa-pub",
            Kind::SaKey => "sa-key",
            Kind::NodeFile => "node-file",
            Kind::UserCsr => "user-csr",
            Kind::CaCsr => "ca-csr",
        }
    }

    /// The group a kind sorts in: the files of one node stay together
    /// (sorted by path), whatever their kinds.
    fn group(self) -> u8 {
        match self {
            Kind::Plan => 0,
            Kind::Names => 1,
            Kind::Previous => 2,
            Kind::Csr
            | Kind::Key
            | Kind::Kubeconfig
            | Kind::SaPublic
            | Kind::SaKey
            | Kind::NodeFile => 3,
            Kind::UserCsr => 4,
            Kind::CaCsr => 5,
        }
    }

    /// The kind of a file of a node's `etc/kubernetes`, by its path there.
    pub fn of_node_file(rel: &str) -> Kind {
        match rel {
            "pki/sa.pub" => Kind::SaPublic,
            "pki/sa.key" => Kind::SaKey,
            r if r.ends_with(".csr") => Kind::Csr,
            r if r.ends_with(".key") => Kind::Key,
            r if r.ends_with(".conf") => Kind::Kubeconfig,
            _ => Kind::NodeFile,
        }
    }
}

/// The inputs gathered so far.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    entries: Vec<(Kind, String, [u8; 32])>,
}

/// The manifest of a ceremony's inputs and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `<sha256>  <kind> <path>` lines, canonical order.
    pub text: String,
    /// SHA-256 of `text`.
    pub digest: [u8; 32],
    /// How many inputs it lists.
    pub count: usize,
}

impl Inputs {
    /// An input read whole: `bytes` are exactly what was checked.
    pub fn add(&mut self, kind: Kind, path: &str, bytes: &[u8]) {
        self.add_sha256(kind, path, Sha256::digest(bytes).into());
    }

    /// An input known by its SHA-256.
    pub fn add_sha256(&mut self, kind: Kind, path: &str, sha256: [u8; 32]) {
        // One line per input, whatever the path holds (a node's file name
        // comes from its medium): escaped as everything shown is.
        let path = crate::fmt::shown(path).into_owned();
        self.entries.push((kind, path, sha256));
    }

    pub fn manifest(&self) -> Manifest {
        let mut entries: Vec<&(Kind, String, [u8; 32])> = self.entries.iter().collect();
        entries.sort_by(|a, b| (a.0.group(), &a.1, a.0, a.2).cmp(&(b.0.group(), &b.1, b.0, b.2)));
        let mut text = String::new();
        for (kind, path, sha) in &entries {
            text.push_str(&crate::fmt::hex(sha));
            text.push_str("  ");
            text.push_str(kind.name());
            text.push(' ');
            text.push_str(path);
            text.push('\n');
        }
        Manifest {
            digest: Sha256::digest(text.as_bytes()).into(),
            text,
            count: entries.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn demo() -> Inputs {
        let mut i = Inputs::default();
        // Added out of order: the manifest's order is its own.
        i.add(Kind::UserCsr, "users/alice.csr", b"alice");
        i.add(
            Kind::Kubeconfig,
            "csr/w1/etc/kubernetes/kubelet.conf",
            b"conf",
        );
        i.add(Kind::Csr, "csr/w1/etc/kubernetes/kubelet.conf.csr", b"w1");
        i.add(
            Kind::Csr,
            "csr/cp1/etc/kubernetes/pki/apiserver.csr",
            b"api",
        );
        i.add(Kind::Key, "csr/cp1/etc/kubernetes/pki/apiserver.key", b"k");
        i.add(Kind::SaPublic, "csr/cp1/etc/kubernetes/pki/sa.pub", b"sa");
        i.add_sha256(Kind::Previous, "../c1/SHA256SUMS", [7; 32]);
        i.add(Kind::Names, "workers.txt", b"w1\n");
        i.add(Kind::Plan, "plan.toml", b"[ceremony]\n");
        i
    }

    #[test]
    fn the_manifest_lists_every_input_in_canonical_order() {
        let m = demo().manifest();
        let want = [
            format!("{}  plan plan.toml", sha(b"[ceremony]\n")),
            format!("{}  names workers.txt", sha(b"w1\n")),
            format!("{}  previous ../c1/SHA256SUMS", hex::encode([7; 32])),
            format!(
                "{}  csr csr/cp1/etc/kubernetes/pki/apiserver.csr",
                sha(b"api")
            ),
            format!(
                "{}  key csr/cp1/etc/kubernetes/pki/apiserver.key",
                sha(b"k")
            ),
            format!("{}  sa-pub csr/cp1/etc/kubernetes/pki/sa.pub", sha(b"sa")),
            format!(
                "{}  kubeconfig csr/w1/etc/kubernetes/kubelet.conf",
                sha(b"conf")
            ),
            format!("{}  csr csr/w1/etc/kubernetes/kubelet.conf.csr", sha(b"w1")),
            format!("{}  user-csr users/alice.csr", sha(b"alice")),
        ]
        .map(|l| l + "\n")
        .concat();
        assert_eq!(m.text, want);
        assert_eq!(m.count, 9);
        assert_eq!(hex::encode(m.digest), sha(want.as_bytes()));
        // The order inputs were added in does not matter.
        let mut reversed = Inputs::default();
        for e in demo().entries.iter().rev() {
            reversed.add_sha256(e.0, &e.1, e.2);
        }
        assert_eq!(reversed.manifest(), m);
    }

    /// Any change to any input (its bytes, its path, its kind), an input
    /// added or one left out, changes the digest.
    #[test]
    fn a_change_in_any_input_changes_the_digest() {
        let base = demo();
        let digest = base.manifest().digest;
        let n = base.entries.len();
        let mut seen = std::collections::BTreeSet::from([digest]);
        for i in 0..n {
            let mut changed = base.clone();
            changed.entries[i].2[0] ^= 1;
            assert!(seen.insert(changed.manifest().digest), "bytes of {i}");
            let mut moved = base.clone();
            moved.entries[i].1.push('x');
            assert!(seen.insert(moved.manifest().digest), "path of {i}");
            let mut dropped = base.clone();
            dropped.entries.remove(i);
            assert!(seen.insert(dropped.manifest().digest), "without {i}");
        }
        let mut kind = base.clone();
        kind.entries[1].0 = Kind::UserCsr;
        assert!(seen.insert(kind.manifest().digest));
        // A worker added to the names file.
        let mut names = base.clone();
        names.add(Kind::Names, "workers.txt", b"w1\nw2\n");
        let old: [u8; 32] = Sha256::digest(b"w1\n").into();
        names.entries.retain(|e| e.0 != Kind::Names || e.2 != old);
        assert_ne!(names.manifest().digest, digest);
        assert_eq!(base.manifest().digest, digest, "pure");
    }

    /// A file name from a node's medium cannot add a line to the manifest.
    #[test]
    fn a_path_is_one_line_whatever_it_holds() {
        let mut i = Inputs::default();
        i.add(Kind::Csr, "csr/w1/etc/kubernetes/a\nfff  plan x.csr", b"x");
        let m = i.manifest();
        assert_eq!(m.text.lines().count(), 1, "{}", m.text);
        assert!(m.text.contains(r"a\u{a}fff  plan x.csr"), "{}", m.text);
    }

    #[test]
    fn node_files_are_named_by_kind() {
        for (rel, kind) in [
            ("pki/apiserver.csr", "csr"),
            ("kubelet.conf.csr", "csr"),
            ("pki/apiserver.key", "key"),
            ("admin.conf", "kubeconfig"),
            ("pki/sa.pub", "sa-pub"),
            ("pki/sa.key", "sa-key"),
            ("README", "node-file"),
        ] {
            assert_eq!(Kind::of_node_file(rel).name(), kind, "{rel}");
        }
    }
}
