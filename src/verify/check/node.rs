//! One node's etc/kubernetes (its CA files, leaves, keys, CSRs, service-account
//! pair and kubeconfigs), and what must agree across nodes.

use super::*;

impl<'a> Ctx<'a> {
    /// One node at `base`. `dir_name`: the name its directory implies;
    /// `out_cas`: OUT/cas/* by role, which the node's CA files must equal.
    pub(super) fn node(
        &mut self,
        base: &str,
        dir_name: Option<&str>,
        root: Option<&CaRef<'_>>,
        out_cas: &BTreeMap<CaRole, (String, Vec<u8>)>,
    ) -> NodeResult {
        let p = |rel: &str| crate::profile::kubeadm::node_file(base, rel);
        let (kubelet_cn, _) = self.peek(&p("kubelet.conf"));
        let kubelet_name = kubelet_cn
            .as_deref()
            .and_then(|cn| cn.strip_prefix("system:node:"))
            .map(str::to_string);
        let name = dir_name.map(str::to_string).or(kubelet_name);
        // With the kubernetes CA delegated, kubeadm makes apiserver.crt: the
        // other CAs' certificates tell a control-plane node then.
        let has_apiserver = self.tree.get(&p("pki/apiserver.crt")).is_some()
            || (self.delegated.contains(&CaRole::Kubernetes)
                && self.tree.get(&p("pki/etcd/ca.crt")).is_some());

        // The expectations: the plan's, or kubeadm's fixed parts.
        let mut role = if has_apiserver {
            Role::ControlPlane
        } else {
            Role::Worker
        };
        let mut exps = None;
        if let Some(plan) = self.plan {
            match name.as_deref().map(|n| (n, expect::plan_node(&plan.cluster, n))) {
                Some((n, Some(pn))) => {
                    role = if matches!(pn, PlanNode::Worker) { Role::Worker } else { Role::ControlPlane };
                    exps = Some(expect::from_plan(&plan.cluster, n, pn));
                }
                Some((n, None)) => {
                    self.add(Problem::new(&dir_label(base), "node", format!("node \"{n}\" is not in the plan; checked against kubeadm's fixed profiles only")))
                }
                None => self.add(Problem::new(
                    &dir_label(base),
                    "node",
                    "cannot tell which node this is (no nodes/<name>/ path, no readable kubelet.conf); checked against kubeadm's fixed profiles only",
                )),
            }
        }
        let from_plan = exps.is_some();
        let exps = exps.unwrap_or_else(|| match role {
            Role::ControlPlane => {
                let (_, cm_server) = self.peek(&p("controller-manager.conf"));
                let adv = cm_server
                    .and_then(|s| parse::https_host_port(&s).ok())
                    .and_then(|(h, _)| h.parse::<IpAddr>().ok());
                expect::fixed_control_plane(name.as_deref(), adv)
            }
            Role::Worker => expect::fixed_worker(name.as_deref()),
        });
        // A delegated CA's leaves are kubeadm's to make on the node.
        let mut exps = exps;
        // A node's etc/kubernetes read alone (an installed /etc/kubernetes)
        // does not hold the node's root: the kubelet's files are not in it.
        if !base.trim_end_matches('/').ends_with("etc/kubernetes") {
            exps.retain(|e| !e.path.starts_with('/'));
        }
        if !from_plan {
            for e in &mut exps {
                if self.delegated.contains(&e.issuer) {
                    e.required = false;
                }
            }
            if role == Role::Worker && self.delegated.contains(&CaRole::Kubernetes) {
                exps.clear();
            }
        }

        // In CSR mode a node keeps its keys: the CSRs travel with the bundle
        // instead, and key files, sa.key and client-key-data may be absent.
        let tree = self.tree;
        let has = |rel: &str| tree.get(&p(rel)).is_some();
        let csr_mode = match self.plan {
            Some(pl) => pl.cluster.mode == LeafMode::Csr,
            None => tree.under(base).any(|(rel, _)| rel.ends_with(".csr")),
        };

        // Which files belong here.
        let ca_files: Vec<(&str, CaRole)> = CA_FILES
            .iter()
            .filter(|(_, r)| role == Role::ControlPlane || *r == CaRole::Kubernetes)
            .map(|(f, r)| (*f, *r))
            .collect();
        let mut wanted: BTreeMap<String, bool> = BTreeMap::new();
        for (f, _) in &ca_files {
            wanted.insert(f.to_string(), true);
        }
        for e in &exps {
            if e.kubeconfig {
                wanted.insert(e.path.clone(), e.required);
            } else {
                wanted.insert(e.cert_file(), e.required);
                let kept = csr_mode && has(&e.csr_file());
                wanted.insert(e.key_file(), e.required && !kept);
            }
            if csr_mode {
                wanted.insert(e.csr_file(), false);
            }
        }
        // Written by this tool since it writes kubeadm configurations; an
        // older bundle has none.
        wanted.insert(layout::KUBEADM_CONFIG.into(), false);
        if role == Role::ControlPlane {
            // The installer puts a delegated CA's own key beside its certificate.
            for r in self.delegated {
                if let Some(k) = ca_key_file(*r) {
                    wanted.insert(k.into(), false);
                }
            }
            if self.kubelet_signer {
                for f in [
                    layout::NODE_KUBELET_SIGNER,
                    layout::NODE_KUBELET_SIGNER_KEY,
                    layout::NODE_KUBELET_CLIENT_CA_BUNDLE,
                ] {
                    wanted.insert(f.into(), false);
                }
            }
            wanted.insert("pki/sa.key".into(), !csr_mode);
            wanted.insert("pki/sa.pub".into(), true);
            // During a service-account key rotation: the previous public key.
            wanted.insert("pki/sa-previous.pub".into(), false);
            // The etcd CA's CRL, where etcd's --client-crl-file and
            // --peer-crl-file read it.
            wanted.insert(layout::ETCD_CRL.into(), false);
        }
        let why = match (from_plan, &name) {
            (true, Some(n)) => format!("by the plan for {} node {n}", role.name()),
            _ => format!("in every {} node", role.name()),
        };
        for (f, required) in &wanted {
            if *required && self.tree.get(&p(f)).is_none() {
                self.add(Problem::new(&p(f), "file", "missing").expected(why.clone()));
            }
        }
        let extra: Vec<String> = self
            .tree
            .under(base)
            .filter(|(rel, e)| {
                !matches!(e.content, Content::Dir)
                    && !wanted.contains_key(*rel)
                    && !is_ca_key_name(rel)
            })
            .map(|(rel, _)| rel.to_string())
            .collect();
        for rel in extra {
            self.add(Problem::new(
                &p(&rel),
                "file",
                format!("unexpected: not part of a kubeadm {} node", role.name()),
            ));
        }

        // The CA files.
        let mut cas: BTreeMap<CaRole, Cert> = BTreeMap::new();
        for (f, r) in &ca_files {
            let file = p(f);
            let Some(c) = self.trust_at(&file, *r, root) else {
                continue;
            };
            self.intermediate(&file, &c, *r, root);
            if let (Some((out_file, out_der)), Some(bytes)) =
                (out_cas.get(r), self.tree.file(&file))
                && bytes != out_der.as_slice()
            {
                self.add(
                    Problem::new(&file, "content", format!("differs from {out_file}"))
                        .expected(short_hash(out_der))
                        .got(short_hash(bytes)),
                );
            }
            cas.insert(*r, c);
        }
        self.delegated_keys(base, role, &cas);
        if role == Role::ControlPlane && self.kubelet_signer {
            self.kubelet_signer_files(base, cas.get(&CaRole::Kubernetes));
        }
        let ca_list: Vec<(CaRole, &Cert)> = cas.iter().map(|(r, c)| (*r, c)).collect();
        for (i, (r1, c1)) in ca_list.iter().enumerate() {
            for (r2, c2) in &ca_list[i + 1..] {
                if matches!((&c1.key, &c2.key), (Ok(a), Ok(b)) if a == b) {
                    self.add(Problem::new(
                        &p(ca_label(*r2)),
                        "publicKey",
                        format!(
                            "same key as {}: each domain needs its own CA",
                            p(ca_label(*r1))
                        ),
                    ));
                }
            }
        }
        let ca_ref = |r: CaRole| {
            cas.get(&r).map(|c| CaRef {
                file: p(ca_label(r)),
                cert: c,
            })
        };
        let crl_file = p(layout::ETCD_CRL);
        if let Some(bytes) = self.tree.file(&crl_file) {
            let out_crl = layout::crl_file(CaRole::Etcd);
            match self.tree.file(&out_crl) {
                Some(want) if want != bytes => self.add(
                    Problem::new(&crl_file, "content", format!("differs from {out_crl}"))
                        .expected(short_hash(want))
                        .got(short_hash(bytes)),
                ),
                Some(_) => {}
                None => self.crl_file(&crl_file, ca_ref(CaRole::Etcd).as_ref()),
            }
        }

        // Leaves: parse everything first, so a swapped key can be named.
        struct Leaf<'e> {
            exp: &'e Expect,
            file: String,
            cert: Option<Cert>,
            key: Option<(String, &'static str, Result<PublicKey, String>)>,
            /// The CSR beside it (CSR mode): its file and public key.
            csr: Option<(String, Result<PublicKey, String>)>,
        }
        let mut leaves: Vec<Leaf<'_>> = Vec::new();
        let mut servers = Vec::new();
        let ca_crt = self.tree.file(&p("pki/ca.crt")).map(<[u8]>::to_vec);
        for e in &exps {
            if e.kubeconfig {
                let file = p(&e.path);
                let keyless = csr_mode && has(&e.csr_file());
                if let Some(kc) =
                    self.kubeconfig(&file, e, ca_crt.as_deref(), &p("pki/ca.crt"), keyless)
                {
                    if let Some(s) = kc.server {
                        servers.push((file.clone(), s));
                    }
                    leaves.push(Leaf {
                        exp: e,
                        file: file.clone(),
                        cert: kc.cert,
                        key: kc.key.map(|k| (file, "client-key-data", k)),
                        csr: self.csr(&p(&e.csr_file())),
                    });
                }
            } else {
                let file = p(&e.cert_file());
                let kf = p(&e.key_file());
                let cert = self.cert_at(&file);
                let key = self.tree.file(&kf).map(|b| b.to_vec()).map(|b| {
                    let k = self.private_key(&kf, &b);
                    (kf.clone(), "key", k)
                });
                if cert.is_some() || key.is_some() {
                    leaves.push(Leaf {
                        exp: e,
                        file,
                        cert,
                        key,
                        csr: self.csr(&p(&e.csr_file())),
                    });
                }
            }
        }
        let mut owners: HashMap<Vec<u8>, String> = HashMap::new();
        for l in &leaves {
            if let Some(Ok(k)) = l.cert.as_ref().map(|c| &c.key) {
                if let Some(first) = owners.get(&k.spki_der) {
                    let what = format!("same key as {first}: each certificate needs its own key");
                    self.add(Problem::new(
                        &l.file,
                        if l.exp.kubeconfig {
                            "client-certificate-data.publicKey"
                        } else {
                            "publicKey"
                        },
                        what,
                    ));
                } else {
                    owners.insert(k.spki_der.clone(), l.file.clone());
                }
            }
        }
        let mut apiserver_sans = None;
        let mut admin_orgs = None;
        for l in &leaves {
            let pre = if l.exp.kubeconfig {
                "client-certificate-data."
            } else {
                ""
            };
            if let Some(c) = &l.cert {
                let ca = ca_ref(l.exp.issuer);
                self.leaf(&l.file, pre, c, l.exp, ca.as_ref());
                if l.exp.path == "pki/apiserver" {
                    apiserver_sans = Some(c.sans.clone());
                }
                if l.exp.path == "admin.conf" {
                    admin_orgs = Some(c.orgs.clone());
                }
                let (own, other) = if l.exp.kubeconfig {
                    (
                        "client-certificate-data".to_string(),
                        format!("{}'s client-certificate-data", l.file),
                    )
                } else {
                    (l.file.clone(), l.file.clone())
                };
                if let Some((kf, field, k)) = &l.key {
                    self.pair(kf, field, k, &own, c, &owners);
                }
                if let Some((cf, k)) = &l.csr {
                    self.pair(cf, "publicKey", k, &other, c, &owners);
                }
            } else {
                if let Some((kf, field, Err(e))) = &l.key {
                    self.add(Problem::new(kf, field, e.clone()));
                }
                if let Some((cf, Err(e))) = &l.csr {
                    self.add(Problem::new(cf, "publicKey", e.clone()));
                }
            }
        }
        // Without a plan and a node name, the etcd certificates must at least agree.
        if self.plan.is_none() && name.is_none() {
            let cn = |path: &str| {
                leaves
                    .iter()
                    .find(|l| l.exp.path == path)
                    .and_then(|l| l.cert.as_ref())
                    .map(|c| c.cn.clone())
            };
            if let (Some(s), Some(pe)) = (cn("pki/etcd/server"), cn("pki/etcd/peer"))
                && s != pe
            {
                self.add(
                    Problem::new(
                        &p("pki/etcd/peer.crt"),
                        "subject.CN",
                        "not the server's (both are the node name)",
                    )
                    .expected(list(&s))
                    .got(list(&pe)),
                );
            }
        }
        // Every kubeconfig's server must be a name the API server's certificate holds.
        if let Some(sans) = &apiserver_sans {
            for (file, server) in &servers {
                if let Ok((host, _)) = parse::https_host_port(server) {
                    let want = parse::host_san(&host);
                    if !sans.contains(&want) {
                        self.add(
                            Problem::new(
                                file,
                                "server",
                                format!(
                                    "{want} is not in {}'s subjectAltName: TLS to it fails",
                                    p("pki/apiserver.crt")
                                ),
                            )
                            .got(server.clone()),
                        );
                    }
                }
            }
        }
        if role == Role::ControlPlane {
            self.service_account(base);
        }
        self.kubeadm_config(
            base,
            name.as_deref(),
            cas.get(&CaRole::Kubernetes),
            apiserver_sans.as_deref(),
        );
        NodeResult {
            base: base.to_string(),
            name,
            role,
            apiserver_sans,
            servers,
            has_super_admin: self.tree.get(&p("super-admin.conf")).is_some(),
            admin_orgs,
        }
    }

    /// A delegated CA's key file: on a control-plane node, the key of the CA
    /// certificate beside it; on a worker, never.
    fn delegated_keys(&mut self, base: &str, role: Role, cas: &BTreeMap<CaRole, Cert>) {
        for r in self.delegated {
            let Some(k) = ca_key_file(*r) else {
                continue;
            };
            let file = format!("{base}{k}");
            let Some(bytes) = self.tree.file(&file).map(<[u8]>::to_vec) else {
                continue;
            };
            if role == Role::Worker {
                self.add(Problem::new(
                    &file,
                    "file",
                    format!(
                        "the delegated {} CA's key belongs on the control-plane nodes only",
                        r.name()
                    ),
                ));
                continue;
            }
            match (self.private_key(&file, &bytes), cas.get(r).map(|c| &c.key)) {
                (Err(e), _) => self.add(Problem::new(&file, "key", e)),
                (Ok(key), Some(Ok(cert_key))) if key != *cert_key => self.add(Problem::new(
                    &file,
                    "key",
                    format!(
                        "does not match {}{}: kubeadm would sign leaves nobody trusts",
                        base,
                        ca_label(*r)
                    ),
                )),
                _ => {}
            }
        }
    }

    /// The kubelet signer on a control-plane node: a CA issued by the node's
    /// kubernetes CA, the node-held key (if installed) its certificate's, and
    /// the trust file exactly the kubernetes CA then the signer.
    fn kubelet_signer_files(&mut self, base: &str, kubernetes: Option<&Cert>) {
        let file = format!("{base}{}", layout::NODE_KUBELET_SIGNER);
        let Some(signer) = self.cert_at(&file) else {
            return;
        };
        if let Some(k8s) = kubernetes {
            let ca = CaRef {
                file: format!("{base}pki/ca.crt"),
                cert: k8s,
            };
            self.chains_to(&file, "", &signer, &ca);
        }
        let key_file = format!("{base}{}", layout::NODE_KUBELET_SIGNER_KEY);
        if let Some(bytes) = self.tree.file(&key_file).map(<[u8]>::to_vec) {
            match (self.private_key(&key_file, &bytes), &signer.key) {
                (Err(e), _) => self.add(Problem::new(&key_file, "key", e)),
                (Ok(k), Ok(c)) if k != *c => self.add(Problem::new(
                    &key_file,
                    "key",
                    format!("does not match {file}"),
                )),
                _ => {}
            }
        }
        let bundle = format!("{base}{}", layout::NODE_KUBELET_CLIENT_CA_BUNDLE);
        if let (Some(got), Some(k8s)) = (self.tree.file(&bundle), kubernetes) {
            let want = crate::x509::to_pem(&k8s.der) + &crate::x509::to_pem(&signer.der);
            if got != want.as_bytes() {
                self.add(
                    Problem::new(
                        &bundle,
                        "certificates",
                        "is not the kubernetes CA then the kubelet signer",
                    )
                    .expected(short_hash(want.as_bytes()))
                    .got(short_hash(got)),
                );
            }
        }
    }

    /// The public key of a CSR file, if there is one.
    pub(super) fn csr(&self, file: &str) -> Option<(String, Result<PublicKey, String>)> {
        self.tree
            .file(file)
            .map(|b| (file.to_string(), parse::csr_public(b)))
    }

    /// sa.key and sa.pub: a key pair (kube-apiserver signs with one and checks with the other).
    pub(super) fn service_account(&mut self, base: &str) {
        let kf = format!("{base}pki/sa.key");
        let pf = format!("{base}pki/sa.pub");
        let key = self
            .tree
            .file(&kf)
            .map(<[u8]>::to_vec)
            .map(|b| self.private_key(&kf, &b));
        let public = self
            .tree
            .file(&pf)
            .map(|b| public::public_key_file(b).map_err(|e| e.to_string()));
        if let Some(Err(e)) = &key {
            self.add(Problem::new(&kf, "key", e.clone()));
        }
        if let Some(Err(e)) = &public {
            self.add(Problem::new(&pf, "publicKey", e.clone()));
        }
        if let (Some(Ok(k)), Some(Ok(pb))) = (&key, &public)
            && k != pb
        {
            self.add(
                Problem::new(&kf, "key", format!("does not match {pf}"))
                    .expected(pb.fingerprint())
                    .got(k.fingerprint()),
            );
        }
        if let (Some(Ok(k)), Some(plan)) = (&key, self.plan)
            && k.key_type != Some(plan.cluster.sa_key)
        {
            self.add(
                Problem::new(&kf, "key", "not the plan's service_account_key")
                    .expected(plan.cluster.sa_key.name())
                    .got(k.kind.clone()),
            );
        }
        // Without a plan, still one of the key types kubeadm makes (an
        // RSA-1024 token signing key is not).
        if self.plan.is_none() {
            let (file, field, k) = match (&key, &public) {
                (Some(Ok(k)), _) => (&kf, "key", k),
                (None, Some(Ok(k))) => (&pf, "publicKey", k),
                _ => return,
            };
            if k.key_type.is_none() {
                self.add(
                    Problem::new(file, field, "not a key type kubeadm makes")
                        .expected(
                            KeyType::ALL
                                .iter()
                                .map(|t| t.name())
                                .collect::<Vec<_>>()
                                .join(", "),
                        )
                        .got(k.kind.clone()),
                );
            }
        }
    }

    /// Checks that need every node: one service-account key, super-admin.conf, workers' server.
    pub(super) fn across(&mut self, nodes: &[NodeResult]) {
        let cps: Vec<&NodeResult> = nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .collect();
        if let Some(first) = cps.first() {
            for f in ["pki/sa.key", "pki/sa.pub"] {
                let a = format!("{}{f}", first.base);
                let Some(want) = self.tree.file(&a) else {
                    continue;
                };
                for other in &cps[1..] {
                    let b = format!("{}{f}", other.base);
                    if let Some(got) = self.tree.file(&b)
                        && got != want
                    {
                        self.add(
                                Problem::new(&b, "content", format!("differs from {a}: every control-plane node needs the same service-account key"))
                                    .expected(short_hash(want))
                                    .got(short_hash(got)),
                            );
                    }
                }
            }
            if self.plan.is_none() {
                let with: Vec<&&NodeResult> = cps.iter().filter(|n| n.has_super_admin).collect();
                let modern = cps.iter().any(|n| {
                    n.admin_orgs
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|g| g == CLUSTER_ADMINS))
                });
                // A continuing ceremony writes only the nodes it renews or
                // adds: the first node, with super-admin.conf, may be untouched.
                let continuing = self.tree.get(layout::CONTINUATION).is_some();
                // An encrypted node not opened may be the first one.
                let unseen = self.tree.sealed.values().any(|s| *s != Sealed::Opened);
                if with.is_empty() && modern && !continuing && !unseen {
                    self.add(Problem::new(
                        &format!("{}super-admin.conf", first.base),
                        "file",
                        "missing on every control-plane node: admin.conf is in kubeadm:cluster-admins, and kubeadm init needs super-admin.conf to bind that group",
                    ));
                }
                for n in with.iter().skip(1) {
                    self.add(Problem::new(
                        &format!("{}super-admin.conf", n.base),
                        "file",
                        format!("also on {}: kubeadm puts this system:masters credential on the first control-plane node only", with[0].base.trim_end_matches('/')),
                    ));
                }
            }
        }
        let all_sans: BTreeSet<&String> = cps
            .iter()
            .filter_map(|n| n.apiserver_sans.as_ref())
            .flatten()
            .collect();
        if !cps.is_empty() && !all_sans.is_empty() {
            for w in nodes.iter().filter(|n| n.role == Role::Worker) {
                for (file, server) in &w.servers {
                    if let Ok((host, _)) = parse::https_host_port(server) {
                        let want = parse::host_san(&host);
                        if !all_sans.contains(&want) {
                            self.add(Problem::new(file, "server", format!("{want} is in no control-plane node's apiserver.crt: TLS to it fails")).got(server.clone()));
                        }
                    }
                }
            }
        }
    }
}
