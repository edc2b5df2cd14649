//! The kubelet API server on port 10250 (in progress): so far the sans-IO HTTP/1.1 core.

pub mod http;
