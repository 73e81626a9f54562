//! Outputs: where every file goes (`layout`), what OUT holds beside the
//! nodes (`outputs`), kubeconfig text, and the one writer that puts files on
//! disk.

pub mod kubeadm_config;
pub mod kubeconfig;
pub mod layout;
pub mod listing;
pub mod outputs;
pub mod sealed;
pub mod write;
