//! Static pages embedded in the binary (the booking page `/ui/`, the operations console
//! `/console/`): no build step, nothing to deploy, served with ETags so browsers revalidate
//! instead of downloading again, and with each page's Content-Security-Policy.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const HTML: &str = "text/html; charset=utf-8";
pub const JS: &str = "text/javascript; charset=utf-8";
pub const CSS: &str = "text/css; charset=utf-8";
pub const SVG: &str = "image/svg+xml";

/// One page's files.
pub struct AssetSet {
    pub assets: &'static [Asset],
    /// The Content-Security-Policy of its `index.html`.
    pub page_policy: &'static str,
    /// Whether any origin may load the files (the widget's modules load from customers' sites).
    pub any_origin: bool,
    pub etags: OnceLock<Vec<String>>,
}

impl AssetSet {
    fn etags(&self) -> &[String] {
        self.etags.get_or_init(|| {
            self.assets
                .iter()
                .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body.as_bytes()))[..16]))
                .collect()
        })
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.assets.iter().position(|a| a.name == name)
    }

    /// The file at `index`: 304 when the browser's copy is current.
    pub fn serve(&self, req: &HttpRequest, index: usize) -> HttpResponse {
        let (asset, etag) = (&self.assets[index], &self.etags()[index]);
        let unchanged = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag));
        let mut answer = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
        answer
            .insert_header((header::ETAG, etag.as_str()))
            // Revalidate every time (cheap with the ETag), so a new version is seen at once.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("x-content-type-options", "nosniff"));
        if self.any_origin {
            answer.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
        }
        if asset.name == "index.html" {
            answer.insert_header(("content-security-policy", self.page_policy));
        }
        if unchanged {
            return answer.finish();
        }
        answer.content_type(asset.content_type).body(asset.body)
    }

    /// Bytes of what a first visit downloads (every file but those named in `except`).
    pub fn weight(&self, except: &[&str]) -> usize {
        self.assets.iter().filter(|a| !except.contains(&a.name)).map(|a| a.body.len()).sum()
    }

    pub fn etags_are_distinct(&self) -> bool {
        let mut tags = self.etags().to_vec();
        tags.sort();
        tags.dedup();
        tags.len() == self.assets.len()
    }
}
