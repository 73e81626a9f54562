//! Outputs: the kubeadm layout and the one writer that puts files on disk.

pub mod kubeconfig;
pub mod write;
