//! A node's `kubeadm-config.yaml`: with `--plan`, exactly what the plan
//! makes for that node; without, what it can be held to from the node's own
//! files (its name, the kubernetes CA it pins, addresses the API server's
//! certificate holds).

use super::*;
use crate::bundle::kubeadm_config;

impl Ctx<'_> {
    /// `apiserver_sans`: the node's apiserver.crt SANs ("DNS:…", "IP:…").
    pub(super) fn kubeadm_config(
        &mut self,
        base: &str,
        name: Option<&str>,
        ca: Option<&Cert>,
        apiserver_sans: Option<&[String]>,
    ) {
        let file = format!("{base}{}", layout::KUBEADM_CONFIG);
        let Some(bytes) = self.tree.file(&file).map(<[u8]>::to_vec) else {
            return;
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            self.add(Problem::new(&file, "content", "not UTF-8 text"));
            return;
        };
        if let (Some(plan), Some(name), Some(ca)) = (self.plan, name, ca) {
            match kubeadm_config::render(&plan.cluster, name, &ca.der) {
                Ok(Some(want)) if want != text => self.add(
                    Problem::new(
                        &file,
                        "content",
                        "not the configuration the plan makes for this node",
                    )
                    .expected(short_hash(want.as_bytes()))
                    .got(short_hash(&bytes)),
                ),
                Ok(_) => {}
                Err(e) => self.add(Problem::new(&file, "content", e)),
            }
            return;
        }
        let mut docs = Vec::new();
        for d in serde_norway::Deserializer::from_str(text) {
            match <serde_norway::Value as serde::Deserialize>::deserialize(d) {
                Ok(v) => docs.push(v),
                Err(e) => {
                    self.add(Problem::new(&file, "content", format!("not YAML: {e}")));
                    return;
                }
            }
        }
        let s = |v: &serde_norway::Value, path: &[&str]| -> Option<String> {
            let mut v = v;
            for k in path {
                v = v.get(k)?;
            }
            match v {
                serde_norway::Value::String(s) => Some(s.clone()),
                serde_norway::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let hash = ca.and_then(|c| kubeadm_config::ca_cert_hash(&c.der).ok());
        for d in &docs {
            let kind = s(d, &["kind"]).unwrap_or_default();
            if let (Some(want), Some(got)) = (name, s(d, &["nodeRegistration", "name"]))
                && want != got
            {
                self.add(
                    Problem::new(
                        &file,
                        &format!("{kind}.nodeRegistration.name"),
                        "not this node",
                    )
                    .expected(want.to_string())
                    .got(got),
                );
            }
            if kind == "JoinConfiguration"
                && let Some(want) = &hash
            {
                let got: Vec<String> = d
                    .get("discovery")
                    .and_then(|v| v.get("bootstrapToken"))
                    .and_then(|v| v.get("caCertHashes"))
                    .and_then(|v| v.as_sequence())
                    .map(|l| {
                        l.iter()
                            .filter_map(|h| h.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if !got.contains(want) {
                    self.add(
                        Problem::new(
                            &file,
                            "discovery.bootstrapToken.caCertHashes",
                            format!(
                                "does not pin {base}pki/ca.crt: the join would trust another CA"
                            ),
                        )
                        .expected(want.clone())
                        .got(got.join(", ")),
                    );
                }
            }
            let Some(sans) = apiserver_sans else { continue };
            let addresses = [
                (
                    "localAPIEndpoint.advertiseAddress",
                    s(d, &["localAPIEndpoint", "advertiseAddress"]),
                ),
                (
                    "controlPlane.localAPIEndpoint.advertiseAddress",
                    s(d, &["controlPlane", "localAPIEndpoint", "advertiseAddress"]),
                ),
                (
                    "controlPlaneEndpoint",
                    s(d, &["controlPlaneEndpoint"])
                        .and_then(|e| parse::https_host_port(&format!("https://{e}")).ok())
                        .map(|(h, _)| h),
                ),
            ];
            for (field, got) in addresses {
                let Some(got) = got else { continue };
                let want = parse::host_san(&got);
                if !sans.contains(&want) {
                    self.add(
                        Problem::new(
                            &file,
                            &format!("{kind}.{field}"),
                            format!("{want} is not in {base}pki/apiserver.crt's subjectAltName"),
                        )
                        .got(got),
                    );
                }
            }
        }
    }
}
