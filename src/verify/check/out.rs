//! A whole ceremony output: OUT's own files, users' kubeconfigs, SHA256SUMS,
//! and the scan of every file (modes, links, CA keys anywhere).

use super::*;
use crate::audit::chain::{ContinuationRecord, SealRecord};
use crate::bundle::layout;

impl<'a> Ctx<'a> {
    /// A ceremony output: root, cas/, chains/, SHA256SUMS, every node, and
    /// the checks across nodes.
    pub(super) fn out(
        &mut self,
        given: Option<&(String, Cert)>,
    ) -> (Vec<NodeResult>, RootUsed, Option<PublicKey>) {
        let out_root = self.cert_at(layout::ROOT_CA);
        if self.tree.get(layout::ROOT_CA).is_none() {
            self.add(Problem::new(layout::ROOT_CA, "file", "missing"));
        }
        if let Some(r) = &out_root {
            self.root(layout::ROOT_CA, r, given.map(|(_, c)| c));
        }
        let (root_ref, used) = match (given, &out_root) {
            (Some((l, c)), _) => (
                Some(CaRef {
                    file: l.clone(),
                    cert: c,
                }),
                RootUsed::Given(l.clone()),
            ),
            (None, Some(c)) => (
                Some(CaRef {
                    file: layout::ROOT_CA.into(),
                    cert: c,
                }),
                RootUsed::Out,
            ),
            (None, None) => (None, RootUsed::None),
        };
        if let (Some((l, c)), None) = (given, &out_root) {
            self.root(l, c, None);
        }

        let mut out_cas: BTreeMap<CaRole, (String, Vec<u8>)> = BTreeMap::new();
        for role in CaRole::INTERMEDIATES {
            let file = layout::ca_file(role);
            if self.tree.get(&file).is_none() {
                self.add(Problem::new(&file, "file", "missing"));
                continue;
            }
            if let Some(c) = self.trust_at(&file, role, root_ref.as_ref()) {
                self.intermediate(&file, &c, role, root_ref.as_ref());
            }
            if let Some(b) = self.tree.file(&file) {
                out_cas.insert(role, (file.clone(), b.to_vec()));
            }
            let chain = layout::chain_file(role);
            match self.tree.file(&chain).map(CertFile::parse) {
                None => self.add(Problem::new(&chain, "file", "missing")),
                Some(Err(e)) => self.add(Problem::new(
                    &chain,
                    "certificates",
                    format!("not PEM: {e}"),
                )),
                Some(Ok(cf)) => {
                    let ders: Vec<&[u8]> = cf.certs.iter().map(|c| c.der.as_slice()).collect();
                    let inter = self
                        .tree
                        .file(&file)
                        .and_then(|b| CertFile::parse(b).ok())
                        .and_then(|f| f.certs.into_iter().next());
                    let want: Vec<Option<&[u8]>> = vec![
                        inter.as_ref().map(|c| c.der.as_slice()),
                        root_ref.as_ref().map(|r| r.cert.der.as_slice()),
                    ];
                    if cf.labels.len() != 2 || cf.certs.len() != 2 {
                        self.add(
                            Problem::new(
                                &chain,
                                "certificates",
                                "must hold the intermediate then the root",
                            )
                            .expected("2 certificates")
                            .got(cf.labels.len().to_string()),
                        );
                    } else {
                        for (i, (got, w)) in ders.iter().zip(&want).enumerate() {
                            if let Some(w) = w
                                && got != w
                            {
                                let which = if i == 0 {
                                    file.clone()
                                } else {
                                    root_ref
                                        .as_ref()
                                        .map_or("the root".into(), |r| r.file.clone())
                                };
                                self.add(
                                    Problem::new(
                                        &chain,
                                        "certificates",
                                        format!("certificate {} is not {which}", i + 1),
                                    )
                                    .expected(short_hash(w))
                                    .got(short_hash(got)),
                                );
                            }
                        }
                    }
                }
            }
        }

        // Written after SHA256SUMS, so outside it, and never optional: the
        // sealed record, and the transcript that binds SHA256SUMS by its hash.
        for f in AFTER_MANIFEST {
            if self.tree.get(f).is_none() {
                self.add(
                    Problem::new(f, "file", "missing")
                        .expected("every ceremony output has it (written after SHA256SUMS)"),
                );
            }
        }
        self.sums();
        self.seal(out_root.as_ref(), given);
        self.backup();
        // The CRLs before the certificates they may list.
        if let Some(r) = &root_ref {
            self.crl_file(&layout::crl_file(CaRole::Root), Some(r));
        }
        for (role, (file, bytes)) in &out_cas {
            let ca = CertFile::parse(bytes)
                .ok()
                .and_then(|f| f.certs.into_iter().next());
            let ca_ref = ca.as_ref().map(|c| CaRef {
                file: file.clone(),
                cert: c,
            });
            self.crl_file(&layout::crl_file(*role), ca_ref.as_ref());
        }
        for (file, bytes) in out_cas.values() {
            if let Some(c) = CertFile::parse(bytes)
                .ok()
                .and_then(|f| f.certs.into_iter().next())
            {
                self.not_revoked(file, "", &c);
            }
        }

        let mut node_names: Vec<String> = self
            .tree
            .children("nodes/")
            .into_iter()
            .filter(|n| self.tree.is_dir(&layout::node_dir(n)))
            .map(str::to_string)
            .collect();
        // Encrypted nodes: opened ones are directories now; the others are
        // present (their archive is in SHA256SUMS) but not checked inside.
        let mut locked = Vec::new();
        for (n, state) in &self.tree.sealed {
            let file = layout::sealed_node(n);
            match state {
                Sealed::Opened => {}
                Sealed::Locked => locked.push(n.clone()),
                Sealed::Failed(why) => {
                    locked.push(n.clone());
                    self.add(Problem::new(&file, "content", why.clone()));
                }
            }
            if let Some(plan) = self.plan
                && !plan.cluster.node_recipients.contains_key(n)
            {
                self.add(Problem::new(
                    &file,
                    "file",
                    "encrypted, but the plan names no recipient for this node (cluster.node_recipients)",
                ));
            }
        }
        if let Some(plan) = self.plan {
            for n in plan.cluster.node_recipients.keys() {
                if self.tree.is_dir(&layout::node_dir(n)) && !self.tree.sealed.contains_key(n) {
                    self.add(Problem::new(
                        &layout::node_dir(n),
                        "file",
                        format!(
                            "in clear, but the plan delivers this node encrypted only ({})",
                            layout::sealed_node(n)
                        ),
                    ));
                }
            }
        }
        for n in self.tree.children("nodes/") {
            if layout::sealed_node_of(&format!("nodes/{n}")).is_some() {
                continue;
            }
            if !self.tree.is_dir(&layout::node_dir(n)) {
                self.add(Problem::new(
                    &layout::node_dir(n),
                    "file",
                    "unexpected: nodes/ holds one directory per node",
                ));
            }
        }
        if !self.tree.is_dir(layout::NODES) {
            self.add(
                Problem::new(layout::NODES, "file", "missing")
                    .expected("nodes/<node>/etc/kubernetes"),
            );
        }
        let untouched = self.untouched();
        if let Some(plan) = self.plan {
            let cl = &plan.cluster;
            let planned: Vec<String> = cl
                .control_plane
                .iter()
                .map(|n| n.name.clone())
                .chain(cl.workers.iter().cloned())
                .collect();
            for n in &planned {
                // A continuing ceremony's untouched nodes are in earlier outputs.
                if !node_names.contains(n) && !untouched.contains(n) && !locked.contains(n) {
                    self.add(Problem::new(
                        &layout::node_root(n),
                        "file",
                        "missing: the plan has this node",
                    ));
                }
            }
            for n in node_names.iter().chain(&locked) {
                if !planned.contains(n) {
                    self.add(Problem::new(
                        &layout::node_dir(n),
                        "file",
                        "unexpected: the plan has no such node",
                    ));
                }
            }
            // Plan order: the first control-plane node first.
            node_names.sort_by_key(|n| planned.iter().position(|p| p == n).unwrap_or(usize::MAX));
        }
        let mut results = Vec::new();
        // Without a plan, a kubelet serving certificate is let be (not checked).
        let kubelet_serving = self.plan.is_none_or(|pl| pl.cluster.kubelet_serving);
        for n in &node_names {
            let top = format!("nodes/{n}/");
            let base = format!("{top}etc/kubernetes/");
            if !self.tree.is_dir(&format!("{top}etc/kubernetes")) {
                self.add(Problem::new(
                    &format!("{top}etc/kubernetes"),
                    "file",
                    "missing",
                ));
                continue;
            }
            let stray: Vec<String> = self
                .tree
                .under(&top)
                .map(|(rel, _)| rel)
                .filter(|rel| {
                    *rel != "etc" && *rel != "etc/kubernetes" && !rel.starts_with("etc/kubernetes/")
                })
                .filter(|rel| !(kubelet_serving && kubelet_dir(rel)))
                .map(|rel| format!("{top}{rel}"))
                .collect();
            for s in stray {
                self.add(Problem::new(
                    &s,
                    "file",
                    if kubelet_serving {
                        "unexpected: a node directory holds only etc/kubernetes and var/lib/kubelet/pki/kubelet.{crt,key}"
                    } else {
                        "unexpected: a node directory holds only etc/kubernetes (and, with kubelet_serving_certs, var/lib/kubelet/pki/kubelet.{crt,key})"
                    },
                ));
            }
            results.push(self.node(&base, Some(n), root_ref.as_ref(), &out_cas));
        }
        self.across(&results);
        self.users(out_cas.get(&CaRole::Kubernetes));
        let root_key = root_ref.as_ref().and_then(|r| r.cert.key.clone().ok());
        (results, used, root_key)
    }

    /// OUT/users/<name>.conf, the plan's `[[users]]`: kubeconfigs like a
    /// node's, issued by the kubernetes CA; without client-key-data when the
    /// user brought a CSR and keeps the key.
    pub(super) fn users(&mut self, ca: Option<&(String, Vec<u8>)>) {
        let tree = self.tree;
        let mut names: Vec<String> = Vec::new();
        for f in tree.children("users/") {
            match f.strip_suffix(".conf") {
                Some(n) if tree.file(&format!("users/{f}")).is_some() => names.push(n.to_string()),
                _ => self.add(Problem::new(
                    &format!("users/{f}"),
                    "file",
                    "unexpected: users/ holds one <name>.conf per user",
                )),
            }
        }
        if let Some(plan) = self.plan {
            for (n, _) in &plan.users {
                if !names.contains(n) {
                    self.add(Problem::new(
                        &format!("users/{n}.conf"),
                        "file",
                        "missing: the plan has this user",
                    ));
                }
            }
            for n in &names {
                if !plan.users.iter().any(|(u, _)| u == n) {
                    self.add(Problem::new(
                        &format!("users/{n}.conf"),
                        "file",
                        "unexpected: the plan has no such user",
                    ));
                }
            }
        }
        let ca_cert = ca
            .and_then(|(_, b)| CertFile::parse(b).ok())
            .and_then(|f| f.certs.into_iter().next());
        for n in names {
            let file = format!("users/{n}.conf");
            let cl = self.plan.map(|p| &p.cluster);
            let groups = self
                .plan
                .and_then(|p| p.users.iter().find(|(u, _)| *u == n))
                .map(|(_, g)| {
                    let mut g = g.clone();
                    g.sort();
                    g
                });
            let exp = Expect {
                path: file.clone(),
                kubeconfig: true,
                required: true,
                issuer: CaRole::Kubernetes,
                cn: Some(n.clone()),
                orgs: groups.into_iter().collect(),
                eku: vec![crate::x509::profile::ID_KP_CLIENT_AUTH],
                sans: SanRule::Exact(BTreeSet::new()),
                key_type: None,
                server: cl.and_then(|cl| {
                    crate::profile::kubeadm::cluster_server(
                        cl,
                        cl.control_plane.first().map(|c| c.address),
                    )
                }),
                cluster: cl.map(|cl| cl.name.clone()),
            };
            let ca_file = ca.map_or("cas/kubernetes-ca.crt", |(f, _)| f.as_str());
            let Some(kc) =
                self.kubeconfig(&file, &exp, ca.map(|(_, b)| b.as_slice()), ca_file, true)
            else {
                continue;
            };
            if let Some(c) = &kc.cert {
                let ca_ref = ca_cert.as_ref().map(|cert| CaRef {
                    file: ca_file.to_string(),
                    cert,
                });
                self.leaf(&file, "client-certificate-data.", c, &exp, ca_ref.as_ref());
                if let Some(k) = &kc.key {
                    self.pair(
                        &file,
                        "client-key-data",
                        k,
                        "client-certificate-data",
                        c,
                        &HashMap::new(),
                    );
                }
            }
        }
    }

    /// OUT/SHA256SUMS (`sha256sum -c` format): every listed file matches and every file is listed.
    pub(super) fn sums(&mut self) {
        let Some(bytes) = self.tree.file(layout::SHA256SUMS) else {
            if self.tree.get(layout::SHA256SUMS).is_none() {
                self.add(Problem::new(layout::SHA256SUMS, "file", "missing"));
            }
            return;
        };
        let Ok(text) = std::str::from_utf8(bytes) else {
            self.add(Problem::new(
                layout::SHA256SUMS,
                "content",
                "not UTF-8 text",
            ));
            return;
        };
        let mut listed: BTreeMap<String, String> = BTreeMap::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = line
                .get(..64)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| {
                    line.get(64..66)
                        .filter(|s| *s == "  " || *s == " *")
                        .map(|_| h)
                })
                .and_then(|h| {
                    line.get(66..)
                        .filter(|p| !p.is_empty())
                        .map(|p| (h.to_ascii_lowercase(), p))
                });
            match parsed {
                None => bad.push(
                    Problem::new(layout::SHA256SUMS, &format!("line {}", i + 1), "malformed")
                        .expected("<64 hex digits>  <relative path>")
                        .got(line.to_string()),
                ),
                Some((_, path))
                    if path.starts_with('/')
                        || path
                            .split('/')
                            .any(|c| c == ".." || c == "." || c.is_empty()) =>
                {
                    bad.push(
                        Problem::new(
                            layout::SHA256SUMS,
                            &format!("line {}", i + 1),
                            "not a plain relative path",
                        )
                        .got(path.to_string()),
                    )
                }
                Some((_, path)) if listed.contains_key(path) => bad.push(Problem::new(
                    layout::SHA256SUMS,
                    &format!("line {}", i + 1),
                    format!("lists {path} twice"),
                )),
                Some((h, path)) => {
                    listed.insert(path.to_string(), h);
                }
            }
        }
        self.problems.extend(bad);
        for (path, want) in &listed {
            match self.tree.get(path).map(|e| &e.content) {
                None => self.add(Problem::new(
                    path,
                    "sha256",
                    "listed in SHA256SUMS but missing",
                )),
                Some(Content::File(b)) => {
                    let got = hex::encode(crate::x509::sha256(b));
                    if &got != want {
                        self.add(
                            Problem::new(path, "sha256", "differs from SHA256SUMS")
                                .expected(want.clone())
                                .got(got),
                        );
                    }
                }
                Some(_) => self.add(Problem::new(
                    path,
                    "sha256",
                    "listed in SHA256SUMS but not a readable regular file",
                )),
            }
        }
        let unlisted: Vec<String> = self
            .tree
            .entries
            .iter()
            .filter(|(k, e)| {
                !matches!(e.content, Content::Dir)
                    && k.as_str() != layout::SHA256SUMS
                    && !AFTER_MANIFEST.contains(&k.as_str())
                    && !listed.contains_key(k.as_str())
                    && !self.tree.opened.contains(k.as_str())
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in unlisted {
            self.add(Problem::new(&k, "sha256", "not listed in SHA256SUMS"));
        }
        // The transcript, written after the manifest, binds it by its hash
        // (a missing transcript is reported with OUT's files).
        let Some(transcript) = self.tree.file(layout::TRANSCRIPT) else {
            return;
        };
        match transcript_sums_hash(transcript) {
            None => self.add(
                Problem::new(
                    layout::TRANSCRIPT,
                    "SHA256SUMS SHA-256",
                    "missing: the transcript does not bind SHA256SUMS",
                )
                .expected(hex::encode(crate::x509::sha256(bytes))),
            ),
            Some(stated) => {
                let got = hex::encode(crate::x509::sha256(bytes));
                if stated != got {
                    self.add(
                        Problem::new(
                            layout::TRANSCRIPT,
                            "SHA256SUMS SHA-256",
                            "is not the hash of SHA256SUMS",
                        )
                        .expected(got)
                        .got(stated),
                    );
                }
            }
        }
    }

    /// The nodes a continuing ceremony's continuation.json lists as left
    /// untouched (their bundles are in earlier outputs); none without it.
    fn untouched(&mut self) -> BTreeSet<String> {
        let Some(bytes) = self.tree.file(layout::CONTINUATION) else {
            return BTreeSet::new();
        };
        match serde_json::from_slice::<ContinuationRecord>(bytes) {
            Ok(r) => r.untouched.into_iter().collect(),
            Err(e) => {
                self.add(Problem::new(
                    layout::CONTINUATION,
                    "content",
                    format!("not a continuation record ({e})"),
                ));
                BTreeSet::new()
            }
        }
    }

    /// OUT/audit.seal.json: the root's seal over the log's `end` record,
    /// checked with OUT's root-ca.crt and with `--root` when given (the
    /// seal must be that root's); the `end` record must hold SHA256SUMS's
    /// hash, and the transcript's final hash, if it states one, must be the
    /// hash of that record. A missing file is reported with OUT's files.
    pub(super) fn seal(&mut self, out_root: Option<&Cert>, given: Option<&(String, Cert)>) {
        let Some(bytes) = self.tree.file(layout::SEAL) else {
            return;
        };
        let record: SealRecord = match serde_json::from_slice(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.add(Problem::new(
                    layout::SEAL,
                    "content",
                    format!("not a seal record ({e})"),
                ));
                return;
            }
        };
        let mut roots: Vec<(String, &[u8])> = Vec::new();
        if let Some(r) = out_root {
            roots.push((layout::ROOT_CA.to_string(), &r.der));
        }
        if let Some((label, c)) = given
            && out_root.is_none_or(|r| r.der != c.der)
        {
            roots.push((label.clone(), &c.der));
        }
        let mut sealed = None;
        for (label, der) in roots {
            match record.check(der) {
                Ok(s) => sealed = sealed.or(Some(s)),
                Err(what) => self.add(Problem::new(
                    layout::SEAL,
                    "seal",
                    format!("not sealed by the root in {label}: {what}"),
                )),
            }
        }
        // Only what a root vouches for is compared.
        let Some(sealed) = sealed else {
            return;
        };
        if let Some(sums) = self.tree.file(layout::SHA256SUMS) {
            let got = hex::encode(crate::x509::sha256(sums));
            if got != sealed.sha256sums_sha256 {
                self.add(
                    Problem::new(
                        layout::SEAL,
                        "end.sha256sums_sha256",
                        "is not the hash of SHA256SUMS: the outputs are not the ones the root sealed",
                    )
                    .expected(got)
                    .got(sealed.sha256sums_sha256.clone()),
                );
            }
        }
        if let Some(stated) = self
            .tree
            .file(layout::TRANSCRIPT)
            .and_then(transcript_final_hash)
        {
            let sealed_hash = hex::encode(sealed.final_hash);
            if stated != sealed_hash {
                self.add(
                    Problem::new(
                        layout::TRANSCRIPT,
                        "audit log final hash",
                        format!("is not the final hash sealed in {}", layout::SEAL),
                    )
                    .expected(sealed_hash)
                    .got(stated),
                );
            }
        }
    }

    /// Over every entry: file kinds, modes, CA key files, and any private
    /// key (key file, PEM block, kubeconfig client-key-data) that belongs to
    /// a CA. Returns the number of regular files.
    pub(super) fn scan(&mut self, root_key: Option<PublicKey>) -> usize {
        let tree = self.tree;
        // Every CA certificate anywhere, with where it was seen.
        let mut ca_keys: Vec<(PublicKey, String)> = Vec::new();
        let mut note_ca = |k: &PublicKey, what: String| {
            if !ca_keys.iter().any(|(x, _)| x == k) {
                ca_keys.push((k.clone(), what));
            }
        };
        if let Some(k) = &root_key {
            note_ca(k, "the root".into());
        }
        for (path, e) in &tree.entries {
            let Content::File(b) = &e.content else {
                continue;
            };
            let certs: Vec<Cert> = if path.ends_with(".conf") {
                KubeconfigFile::parse(b)
                    .ok()
                    .and_then(|kc| kc.clusters)
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c.cluster.and_then(|c| c.ca_data))
                    .filter_map(|d| base64_data(&d).ok())
                    .filter_map(|pem| CertFile::parse(&pem).ok())
                    .flat_map(|f| f.certs)
                    .collect()
            } else {
                CertFile::parse(b).map(|f| f.certs).unwrap_or_default()
            };
            for c in certs.iter().filter(|c| c.is_ca()) {
                if let Ok(k) = &c.key {
                    note_ca(k, format!("{} ({path})", c.subject));
                }
            }
        }

        let mut files = 0;
        for (path, e) in &tree.entries {
            let bytes = match &e.content {
                Content::Dir => {
                    // The writer makes directories 0755, narrowed by the umask.
                    if e.mode & !DIR_MODE != 0 {
                        self.add(
                            Problem::new(path, "mode", "wrong permissions for a directory")
                                .expected(format!("{DIR_MODE:04o} or narrower"))
                                .got(format!("{:04o}", e.mode)),
                        );
                    }
                    continue;
                }
                Content::Symlink => {
                    self.add(
                        Problem::new(path, "file", "a symbolic link").expected("a regular file"),
                    );
                    continue;
                }
                Content::Special => {
                    self.add(Problem::new(path, "file", "not a regular file"));
                    continue;
                }
                Content::Unreadable(why) => {
                    self.add(Problem::new(path, "file", format!("cannot be read: {why}")));
                    continue;
                }
                Content::File(b) => b,
            };
            files += 1;
            if let Some(want) = expected_mode(path)
                && e.mode != want
            {
                self.add(
                    Problem::new(path, "mode", "wrong permissions")
                        .expected(format!("{want:04o}"))
                        .got(format!("{:04o}", e.mode)),
                );
            }
            // A delegated CA's key is the nodes' own (checked per node).
            let delegated_key = is_delegated_key(path, self.delegated)
                || (self.kubelet_signer
                    && (path == layout::NODE_KUBELET_SIGNER_KEY
                        || path.ends_with(&format!(
                            "etc/kubernetes/{}",
                            layout::NODE_KUBELET_SIGNER_KEY
                        ))));
            if is_ca_key_name(path) && !delegated_key {
                self.add(Problem::new(
                    path,
                    "file",
                    "a CA private key file: CA keys never leave the token, and with it kubeadm leaves external-CA mode",
                ));
            }
            // Private keys in this file, by (id, field).
            let mut keys: Vec<(String, &'static str, Result<PublicKey, String>)> = Vec::new();
            if path.ends_with(".conf") {
                if let Ok(kc) = KubeconfigFile::parse(bytes) {
                    for (i, u) in kc.users.into_iter().flatten().enumerate() {
                        if let Some(pem) = u
                            .user
                            .and_then(|u| u.key_data)
                            .and_then(|d| base64_data(&d).ok())
                        {
                            let id = if i == 0 {
                                format!("{path}#client-key-data")
                            } else {
                                format!("{path}#client-key-data{i}")
                            };
                            let k = self.private_key(&id, &pem);
                            keys.push((id, "client-key-data", k));
                        }
                    }
                }
            } else if let Ok(blocks) = parse::pem_blocks(bytes) {
                let private: Vec<&parse::Block> = blocks
                    .iter()
                    .filter(|b| public::is_private_key_label(&b.label))
                    .collect();
                if path.ends_with(".key") && blocks.len() == 1 && private.len() == 1 {
                    let k = self.private_key(path, bytes);
                    keys.push((path.clone(), "key", k));
                } else {
                    for b in private {
                        keys.push((
                            path.clone(),
                            "key",
                            public::private_key_block(b).map_err(|e| e.to_string()),
                        ));
                    }
                }
            }
            for (_, field, k) in keys {
                if delegated_key {
                    continue;
                }
                if let Ok(k) = k
                    && let Some((_, whose)) = ca_keys.iter().find(|(ck, _)| *ck == k)
                {
                    self.add(Problem::new(
                        path,
                        field,
                        format!(
                            "is the private key of the CA {whose}: CA keys never leave the token"
                        ),
                    ));
                }
            }
        }
        files
    }
}

/// The kubelet's serving certificate and key and their directories,
/// relative to a node's root.
fn kubelet_dir(rel: &str) -> bool {
    let serving = crate::profile::kubeadm::KUBELET_SERVING.trim_start_matches('/');
    rel == format!("{serving}.crt")
        || rel == format!("{serving}.key")
        || ["var", "var/lib", "var/lib/kubelet", "var/lib/kubelet/pki"].contains(&rel)
}
