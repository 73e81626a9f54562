//! Kubeconfig files as kubeadm (client-go's clientcmd) writes them: one
//! cluster, one user, one context `<user>@<cluster>`, data embedded.
//!
//! Pure: rendering only. The YAML is written by hand because its shape is
//! fixed and small; every scalar that is not plainly safe is emitted as a
//! double-quoted (JSON) string, which YAML 1.2 reads as the same value.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
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
    pub key_pem: &'a str,
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
pub fn render(k: &Kubeconfig<'_>) -> Zeroizing<String> {
    let context = format!("{}@{}", k.user, k.cluster);
    let key_b64 = Zeroizing::new(STANDARD.encode(k.key_pem.as_bytes()));
    Zeroizing::new(format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {cluster}\n\
         contexts:\n\
         - context:\n    cluster: {cluster}\n    user: {user}\n  name: {context}\n\
         current-context: {context}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = k.ca_data,
        server = scalar(k.server),
        cluster = scalar(k.cluster),
        user = scalar(k.user),
        context = scalar(&context),
        cert = STANDARD.encode(k.cert_pem.as_bytes()),
        key = key_b64.as_str(),
    ))
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
            key_pem: "KEY",
        });
        let reference = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kubeadm/reference/etc/kubernetes/kubelet.conf"
        ));
        let shape = |t: &str| {
            t.lines()
                .map(|l| l.split(": ").next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        };
        if let Ok(r) = reference {
            assert_eq!(
                shape(&text),
                shape(&r),
                "same keys in the same order as kubeadm's kubelet.conf"
            );
        }
        assert!(text.contains(
            "  name: system:node:cp1@kubernetes\ncurrent-context: system:node:cp1@kubernetes\n"
        ));
        assert!(text.contains("client-key-data: S0VZ\n"));
    }

    #[test]
    fn quotes_what_is_not_plain() {
        assert_eq!(scalar("kubernetes-admin"), "kubernetes-admin");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("a b"), "\"a b\"");
        assert_eq!(scalar("1.5"), "\"1.5\"");
    }
}
