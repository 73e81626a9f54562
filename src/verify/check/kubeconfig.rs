//! Kubeconfigs: structure, CA data, server, and the embedded client
//! certificate and key.

use super::*;
use crate::bundle::kubeconfig::OtherKeys;

impl<'a> Ctx<'a> {
    /// The name and server of a kubeconfig's client certificate, without reporting anything.
    pub(super) fn peek(&self, file: &str) -> (Option<String>, Option<String>) {
        let Some(kc) = self
            .tree
            .file(file)
            .and_then(|b| KubeconfigFile::parse(b).ok())
        else {
            return (None, None);
        };
        let server = kc
            .clusters
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone());
        let cn = kc
            .users
            .as_ref()
            .and_then(|u| u.first())
            .and_then(|u| u.user.as_ref())
            .and_then(|u| u.cert_data.as_deref())
            .and_then(|d| base64_data(d).ok())
            .and_then(|pem| CertFile::parse(&pem).ok())
            .and_then(|f| f.certs.into_iter().next())
            .and_then(|c| c.cn.into_iter().next());
        (cn, server)
    }

    /// A kubeconfig's structure, its CA data, server and embedded client
    /// certificate and key. None when the file is absent or unreadable YAML.
    pub(super) fn kubeconfig(
        &mut self,
        file: &str,
        exp: &Expect,
        ca_crt: Option<&[u8]>,
        ca_file: &str,
        keyless_ok: bool,
    ) -> Option<KcParts> {
        let bytes = self.tree.file(file)?;
        let kc = match KubeconfigFile::parse(bytes) {
            Ok(k) => k,
            Err(e) => {
                self.add(Problem::new(file, "yaml", e));
                return None;
            }
        };
        if kc.kind.as_deref() != Some("Config") {
            self.add(
                Problem::new(file, "kind", "wrong")
                    .expected("Config")
                    .got(kc.kind.clone().unwrap_or_else(|| "none".into())),
            );
        }
        if kc.api_version.as_deref() != Some("v1") {
            self.add(
                Problem::new(file, "apiVersion", "wrong")
                    .expected("v1")
                    .got(kc.api_version.clone().unwrap_or_else(|| "none".into())),
            );
        }
        let mut one = |field: &str, n: usize| {
            if n != 1 {
                self.add(
                    Problem::new(file, field, "kubeadm writes exactly one")
                        .expected("1")
                        .got(n.to_string()),
                );
            }
        };
        one("clusters", kc.clusters.as_ref().map_or(0, Vec::len));
        one("users", kc.users.as_ref().map_or(0, Vec::len));
        one("contexts", kc.contexts.as_ref().map_or(0, Vec::len));
        self.unwritten(file, "", &kc.other);
        if let Some(prefs) = &kc.preferences {
            self.unwritten(file, "preferences", prefs);
        }
        let mut parts = KcParts {
            server: None,
            cert: None,
            key: None,
        };

        let cluster = kc.clusters.as_ref().and_then(|v| v.first());
        let cluster_name = cluster.and_then(|c| c.name.clone());
        if let Some(c) = cluster {
            self.unwritten(file, "clusters[0]", &c.other);
            match (&c.name, &exp.cluster) {
                (None, _) => self.add(Problem::new(file, "clusters[0].name", "missing")),
                (Some(n), Some(want)) if n != want => self.add(
                    Problem::new(file, "clusters[0].name", "not the plan's cluster name")
                        .expected(want.clone())
                        .got(n.clone()),
                ),
                _ => {}
            }
            match &c.cluster {
                None => self.add(Problem::new(file, "clusters[0].cluster", "missing")),
                Some(entry) => {
                    match &entry.server {
                        None => self.add(
                            Problem::new(file, "server", "missing")
                                .expected("https://<host>:<port>"),
                        ),
                        Some(s) => {
                            if let Err(e) = parse::https_host_port(s) {
                                self.add(
                                    Problem::new(file, "server", e)
                                        .expected("https://<host>:<port>")
                                        .got(s.clone()),
                                );
                            } else if let Some(want) = exp.server.as_ref().filter(|w| *w != s) {
                                self.add(
                                    Problem::new(file, "server", "not the plan's endpoint")
                                        .expected(want.clone())
                                        .got(s.clone()),
                                );
                            }
                            parts.server = Some(s.clone());
                        }
                    }
                    self.unwritten(file, "clusters[0].cluster", &entry.other);
                    if let Some(f) = &entry.ca_file {
                        self.add(
                            Problem::new(
                                file,
                                "certificate-authority",
                                "names a file; kubeadm embeds certificate-authority-data",
                            )
                            .got(f.clone()),
                        );
                    }
                    match entry.ca_data.as_deref().map(base64_data) {
                        None => self.add(
                            Problem::new(file, "certificate-authority-data", "missing")
                                .expected(format!("the bytes of {ca_file}")),
                        ),
                        Some(Err(e)) => {
                            self.add(Problem::new(file, "certificate-authority-data", e))
                        }
                        Some(Ok(data)) => match ca_crt {
                            Some(ca) if ca != data.as_slice() => self.add(
                                Problem::new(
                                    file,
                                    "certificate-authority-data",
                                    format!("differs from {ca_file}"),
                                )
                                .expected(short_hash(ca))
                                .got(short_hash(&data)),
                            ),
                            Some(_) => {}
                            None => {
                                // No ca.crt to compare with (reported as missing): the data must still be one CA.
                                if let Some(c) =
                                    self.one_cert(file, "certificate-authority-data", &data)
                                    && !c.is_ca()
                                {
                                    self.add(Problem::new(
                                        file,
                                        "certificate-authority-data",
                                        "not a CA certificate",
                                    ));
                                }
                            }
                        },
                    }
                }
            }
        }

        let user = kc.users.as_ref().and_then(|v| v.first());
        let user_name = user.and_then(|u| u.name.clone());
        if let Some(u) = user {
            self.unwritten(file, "users[0]", &u.other);
            match &u.user {
                None => self.add(Problem::new(file, "users[0].user", "missing")),
                Some(entry) => {
                    if !entry.other.is_empty() {
                        let keys: Vec<String> = entry.other.keys().cloned().collect();
                        self.add(
                            Problem::new(
                                file,
                                "users[0].user",
                                "other credentials besides the client certificate",
                            )
                            .got(keys.join(", ")),
                        );
                    }
                    if entry.cert_file.is_some() || entry.key_file.is_some() {
                        self.add(Problem::new(
                            file,
                            "users[0].user",
                            "names certificate or key files; kubeadm embeds the data",
                        ));
                    }
                    match entry.cert_data.as_deref().map(base64_data) {
                        None => self.add(Problem::new(file, "client-certificate-data", "missing")),
                        Some(Err(e)) => self.add(Problem::new(file, "client-certificate-data", e)),
                        Some(Ok(pem)) => {
                            parts.cert = self.one_cert(file, "client-certificate-data", &pem)
                        }
                    }
                    match entry.key_data.as_ref().map(|d| base64_data(d)) {
                        None if keyless_ok => {}
                        None => self.add(Problem::new(file, "client-key-data", "missing")),
                        Some(Err(e)) => self.add(Problem::new(file, "client-key-data", e)),
                        Some(Ok(pem)) => {
                            parts.key =
                                Some(self.private_key(&format!("{file}#client-key-data"), &pem))
                        }
                    }
                }
            }
            match (&user_name, parts.cert.as_ref().map(|c| &c.cn)) {
                (None, _) => self.add(Problem::new(file, "users[0].name", "missing")),
                (Some(n), Some(cn)) if cn.len() != 1 || &cn[0] != n => self.add(
                    Problem::new(file, "users[0].name", "not the client certificate's CN")
                        .expected(list(cn))
                        .got(n.clone()),
                ),
                _ => {}
            }
        }

        let context = kc.contexts.as_ref().and_then(|v| v.first());
        if let Some(x) = context {
            self.unwritten(file, "contexts[0]", &x.other);
            if let Some(e) = &x.context {
                self.unwritten(file, "contexts[0].context", &e.other);
            }
            let entry = x.context.as_ref();
            let c_cluster = entry.and_then(|e| e.cluster.clone());
            let c_user = entry.and_then(|e| e.user.clone());
            if let Some(cn) = &cluster_name
                && c_cluster.as_ref() != Some(cn)
            {
                self.add(
                    Problem::new(
                        file,
                        "contexts[0].context.cluster",
                        "not the cluster's name",
                    )
                    .expected(cn.clone())
                    .got(c_cluster.clone().unwrap_or_else(|| "none".into())),
                );
            }
            if let Some(un) = &user_name
                && c_user.as_ref() != Some(un)
            {
                self.add(
                    Problem::new(file, "contexts[0].context.user", "not the user's name")
                        .expected(un.clone())
                        .got(c_user.clone().unwrap_or_else(|| "none".into())),
                );
            }
            if let (Some(un), Some(cn)) = (&user_name, &cluster_name) {
                let want = format!("{un}@{cn}");
                if x.name.as_ref() != Some(&want) {
                    self.add(
                        Problem::new(file, "contexts[0].name", "not <user>@<cluster>")
                            .expected(want)
                            .got(x.name.clone().unwrap_or_else(|| "none".into())),
                    );
                }
            }
            match (&kc.current_context, &x.name) {
                (None, _) => self.add(
                    Problem::new(file, "current-context", "not set")
                        .expected(x.name.clone().unwrap_or_default()),
                ),
                (Some(cur), Some(n)) if cur != n => self.add(
                    Problem::new(file, "current-context", "not the context")
                        .expected(n.clone())
                        .got(cur.clone()),
                ),
                _ => {}
            }
        }
        Some(parts)
    }
}

impl Ctx<'_> {
    /// One problem per key of a kubeconfig map that the writer never writes
    /// (`at`: the map's path, "" for the top): `verify` allows exactly what
    /// the ceremony writes, since each such key changes what a client does.
    fn unwritten(&mut self, file: &str, at: &str, other: &OtherKeys) {
        for key in other.keys() {
            let what = match key.as_str() {
                "insecure-skip-tls-verify" => "set: the client would not check the API server",
                "tls-server-name" => {
                    "set: the client would check the API server's certificate for another name"
                }
                "proxy-url" => "set: the client would connect through a proxy",
                _ => "a key the ceremony never writes",
            };
            let field = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            self.add(Problem::new(file, &field, what).expected("only the keys kubeadm writes"));
        }
    }
}

/// What a kubeconfig yields for the checks after it.
pub(super) struct KcParts {
    pub(super) server: Option<String>,
    pub(super) cert: Option<Cert>,
    pub(super) key: Option<Result<PublicKey, String>>,
}
