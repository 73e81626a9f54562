//! Kubeconfig files as kubeadm (client-go's clientcmd) writes them: one
//! cluster, one user, one context `<user>@<cluster>`, data embedded.
//!
//! Also the reader of the same files, for `verify` and CSR intake: the
//! format is defined once, here, for both directions.
//!
//! Pure: rendering and parsing only. The YAML is written by hand because its
//! shape is fixed and small; every scalar that is not plainly safe is emitted
//! as a double-quoted (JSON) string, which YAML 1.2 reads as the same value.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use zeroize::Zeroizing;

/// What a kubeconfig embeds.
pub struct Kubeconfig<'a> {
    pub cluster: &'a str,
    pub server: &'a str,
    pub user: &'a str,
    /// `certificate-authority-data`: [`ca_data`] of the CA's PEM, made once
    /// for all of a bundle's kubeconfigs.
    pub ca_data: &'a str,
    pub cert_pem: &'a str,
    /// `client-key-data`; None when the key stays with its owner (a node or
    /// user that brought a CSR adds it before use).
    pub key_pem: Option<&'a str>,
}

fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/@".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && !s.contains(": ")
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// `certificate-authority-data` of a CA certificate's PEM.
pub fn ca_data(ca_pem: &str) -> String {
    STANDARD.encode(ca_pem.as_bytes())
}

/// The kubeconfig text; it holds a private key, so it is zeroized on drop.
/// It is written into one buffer of its final size: a string grown as it is
/// written leaves each smaller buffer, the key's base64 in it, to the
/// allocator unwiped.
pub fn render(k: &Kubeconfig<'_>) -> Zeroizing<String> {
    let (server, cluster, user) = (scalar(k.server), scalar(k.cluster), scalar(k.user));
    let context = scalar(&format!("{}@{}", k.user, k.cluster));
    let head = [
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ",
        k.ca_data,
        "\n    server: ",
        &server,
        "\n  name: ",
        &cluster,
        "\ncontexts:\n- context:\n    cluster: ",
        &cluster,
        "\n    user: ",
        &user,
        "\n  name: ",
        &context,
        "\ncurrent-context: ",
        &context,
        "\nkind: Config\npreferences: {}\nusers:\n- name: ",
        &user,
        "\n  user:\n    client-certificate-data: ",
    ];
    const KEY: &str = "\n    client-key-data: ";
    let b64 = |n: usize| n.div_ceil(3) * 4;
    let size = head.iter().map(|s| s.len()).sum::<usize>()
        + b64(k.cert_pem.len())
        + k.key_pem.map_or(0, |key| KEY.len() + b64(key.len()))
        + 1;
    let mut out = Zeroizing::new(String::with_capacity(size));
    for s in head {
        out.push_str(s);
    }
    STANDARD.encode_string(k.cert_pem.as_bytes(), &mut out);
    if let Some(key) = k.key_pem {
        out.push_str(KEY);
        STANDARD.encode_string(key.as_bytes(), &mut out);
    }
    out.push('\n');
    debug_assert_eq!(out.len(), size, "sized exactly: never grown");
    out
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Zeroizing<String>>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Zeroizing::new))
}

/// Keys of a map that the writer never writes, by name (values not kept).
pub type OtherKeys = BTreeMap<String, serde::de::IgnoredAny>;

/// A kubeconfig as read back (`verify`, CSR intake), as far as kubeadm's
/// are concerned. Every key the writer does not write is kept by name in
/// `other` at its level, for `verify` to refuse (a proxy, a TLS server
/// name, a namespace or extension changes what the client does).
#[derive(Deserialize)]
pub struct KubeconfigFile {
    #[serde(rename = "apiVersion")]
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(default)]
    pub clusters: Option<Vec<NamedCluster>>,
    #[serde(default)]
    pub contexts: Option<Vec<NamedContext>>,
    #[serde(rename = "current-context")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub users: Option<Vec<NamedUser>>,
    /// Written as `{}`.
    pub preferences: Option<OtherKeys>,
    #[serde(flatten)]
    pub other: OtherKeys,
}

#[derive(Deserialize)]
pub struct NamedCluster {
    pub name: Option<String>,
    pub cluster: Option<ClusterEntry>,
    #[serde(flatten)]
    pub other: OtherKeys,
}

#[derive(Deserialize)]
pub struct ClusterEntry {
    pub server: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    pub ca_data: Option<String>,
    #[serde(rename = "certificate-authority")]
    pub ca_file: Option<String>,
    /// Anything else (`insecure-skip-tls-verify`, `tls-server-name`,
    /// `proxy-url`, `extensions`, …).
    #[serde(flatten)]
    pub other: OtherKeys,
}

#[derive(Deserialize)]
pub struct NamedContext {
    pub name: Option<String>,
    pub context: Option<ContextEntry>,
    #[serde(flatten)]
    pub other: OtherKeys,
}

#[derive(Deserialize)]
pub struct ContextEntry {
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// `namespace`, `extensions`, …
    #[serde(flatten)]
    pub other: OtherKeys,
}

#[derive(Deserialize)]
pub struct NamedUser {
    pub name: Option<String>,
    pub user: Option<UserEntry>,
    #[serde(flatten)]
    pub other: OtherKeys,
}

#[derive(Deserialize)]
pub struct UserEntry {
    #[serde(rename = "client-certificate-data")]
    pub cert_data: Option<String>,
    #[serde(rename = "client-key-data", default, deserialize_with = "secret")]
    pub key_data: Option<Zeroizing<String>>,
    #[serde(rename = "client-certificate")]
    pub cert_file: Option<String>,
    #[serde(rename = "client-key")]
    pub key_file: Option<String>,
    /// Any other way to authenticate (token, exec, auth-provider, basic auth).
    #[serde(flatten)]
    pub other: OtherKeys,
}

impl KubeconfigFile {
    pub fn parse(bytes: &[u8]) -> Result<KubeconfigFile, String> {
        serde_norway::from_slice(bytes).map_err(|e| format!("not a kubeconfig: {e}"))
    }
}

/// Base64 of a kubeconfig `*-data` field (Go's StdEncoding; line breaks ignored).
pub fn base64_data(s: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let clean: Zeroizing<String> =
        Zeroizing::new(s.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    STANDARD
        .decode(clean.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kubeadm_shape() {
        let text = render(&Kubeconfig {
            cluster: "kubernetes",
            server: "https://127.0.0.1:6443",
            user: "system:node:cp1",
            ca_data: &ca_data("CA"),
            cert_pem: "CERT",
            key_pem: Some("KEY"),
        });
        // Vendored: a missing file fails the test rather than skip the comparison.
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kubeadm/reference/etc/kubernetes/kubelet.conf"
        );
        let r = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
        let shape = |t: &str| {
            t.lines()
                .map(|l| l.split(": ").next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(&text),
            shape(&r),
            "same keys in the same order as kubeadm's kubelet.conf"
        );
        assert!(text.contains(
            "  name: system:node:cp1@kubernetes\ncurrent-context: system:node:cp1@kubernetes\n"
        ));
        assert!(text.contains("client-key-data: S0VZ\n"));
    }

    /// The text is kubeadm's layout, field for field, in a buffer made
    /// once at its final size (no unwiped smaller copy of the key).
    #[test]
    fn renders_in_one_buffer_of_its_final_size() {
        let key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n";
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let text = render(&Kubeconfig {
            cluster: "kubernetes",
            server: "https://10.0.0.10:6443",
            user: "system:node:worker 1",
            ca_data: &ca_data("CA"),
            cert_pem: cert,
            key_pem: Some(key),
        });
        assert_eq!(text.len(), text.capacity());
        let expected = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    \
             server: https://10.0.0.10:6443\n  name: kubernetes\ncontexts:\n- context:\n    \
             cluster: kubernetes\n    user: \"system:node:worker 1\"\n  \
             name: \"system:node:worker 1@kubernetes\"\n\
             current-context: \"system:node:worker 1@kubernetes\"\nkind: Config\n\
             preferences: {{}}\nusers:\n- name: \"system:node:worker 1\"\n  user:\n    \
             client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(cert),
            STANDARD.encode(key)
        );
        assert_eq!(*text, expected);
    }

    #[test]
    fn quotes_what_is_not_plain() {
        assert_eq!(scalar("kubernetes-admin"), "kubernetes-admin");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("1.5"), "\"1.5\"");
    }

    /// The reader takes back what the writer wrote.
    #[test]
    fn reads_back_what_it_renders() {
        let text = render(&Kubeconfig {
            cluster: "kubernetes",
            server: "https://10.0.0.10:6443",
            user: "system:node:worker 1",
            ca_data: &ca_data("CA"),
            cert_pem: "CERT",
            key_pem: Some("KEY"),
        });
        let kc = KubeconfigFile::parse(text.as_bytes()).unwrap();
        assert_eq!(kc.kind.as_deref(), Some("Config"));
        let cluster = kc.clusters.unwrap().remove(0).cluster.unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.0.0.10:6443"));
        let ca = base64_data(&cluster.ca_data.unwrap()).unwrap();
        assert_eq!(ca.as_slice(), b"CA");
        let user = kc.users.unwrap().remove(0);
        assert_eq!(user.name.as_deref(), Some("system:node:worker 1"));
        let key = base64_data(&user.user.unwrap().key_data.unwrap()).unwrap();
        assert_eq!(key.as_slice(), b"KEY");
    }
}
