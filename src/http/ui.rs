//! The booking page (`/ui/`) and the embeddable widget (`/ui/widget.js`): plain HTML, CSS and
//! JavaScript modules embedded in the binary (nothing to deploy, no build step), served with
//! ETags so browsers revalidate instead of downloading again. The page calls only Ringback (its
//! Content-Security-Policy says so). The assets themselves are public: they allow any origin, so
//! the widget can load its modules from a customer's site.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_str!("ui/index.html") },
    Asset { name: "page.js", content_type: "text/javascript; charset=utf-8", body: include_str!("ui/page.js") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("ui/app.js") },
    Asset { name: "strings.js", content_type: "text/javascript; charset=utf-8", body: include_str!("ui/strings.js") },
    Asset { name: "widget.js", content_type: "text/javascript; charset=utf-8", body: include_str!("ui/widget.js") },
    Asset { name: "style.css", content_type: "text/css; charset=utf-8", body: include_str!("ui/style.css") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", body: include_str!("ui/icon.svg") },
];

/// The page may load and call only its own origin.
const PAGE_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; base-uri 'none'; frame-ancestors 'self'";

fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS.iter().map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body.as_bytes()))[..16])).collect()
    })
}

fn serve(req: &HttpRequest, index: usize) -> HttpResponse {
    let (asset, etag) = (&ASSETS[index], &etags()[index]);
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
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header(("x-content-type-options", "nosniff"));
    if asset.name == "index.html" {
        answer.insert_header(("content-security-policy", PAGE_POLICY));
    }
    if unchanged {
        return answer.finish();
    }
    answer.content_type(asset.content_type).body(asset.body)
}

fn index_of(name: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.name == name)
}

/// `/ui/` and `/ui/{file}`.
pub async fn asset(req: HttpRequest, path: Option<web::Path<String>>) -> Result<HttpResponse, ApiError> {
    let name = path.map(|p| p.into_inner()).unwrap_or_else(|| "index.html".to_string());
    index_of(&name).map(|i| serve(&req, i)).ok_or_else(|| ApiError::not_found("file"))
}

/// `/ui` without its slash: the page's relative paths need the slash.
pub async fn redirect_to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/ui/")).finish()
}

/// Browsers ask for `/favicon.ico` on their own; answering it keeps those requests out of the 404
/// counters the `GES_HTTP_404_*` alerts read.
pub async fn favicon(req: HttpRequest) -> HttpResponse {
    serve(&req, index_of("icon.svg").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of what a first visit downloads (the page, its modules, style and icon), for the README.
    fn page_weight() -> usize {
        ASSETS.iter().filter(|a| a.name != "widget.js").map(|a| a.body.len()).sum()
    }

    #[test]
    fn the_page_stays_small_and_every_asset_has_its_own_etag() {
        assert!(page_weight() < 50 * 1024, "{} bytes", page_weight());
        let mut tags = etags().to_vec();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
