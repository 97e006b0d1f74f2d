//! The booking page (`/ui/`) and the embeddable widget (`/ui/widget.js`): plain HTML, CSS and
//! JavaScript modules embedded in the binary (`assets`). The page calls only Ringback (its
//! Content-Security-Policy says so). The assets themselves are public: they allow any origin, so
//! the widget can load its modules from a customer's site.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::assets::{Asset, AssetSet, CSS, HTML, JS, SVG};

static UI: AssetSet = AssetSet {
    assets: &[
        Asset { name: "index.html", content_type: HTML, body: include_str!("ui/index.html") },
        Asset { name: "page.js", content_type: JS, body: include_str!("ui/page.js") },
        Asset { name: "app.js", content_type: JS, body: include_str!("ui/app.js") },
        Asset { name: "strings.js", content_type: JS, body: include_str!("ui/strings.js") },
        Asset { name: "widget.js", content_type: JS, body: include_str!("ui/widget.js") },
        Asset { name: "style.css", content_type: CSS, body: include_str!("ui/style.css") },
        Asset { name: "icon.svg", content_type: SVG, body: include_str!("ui/icon.svg") },
    ],
    // The page may load and call only its own origin.
    page_policy: "default-src 'self'; img-src 'self' data:; style-src 'self'; base-uri 'none'; frame-ancestors 'self'",
    any_origin: true,
    etags: OnceLock::new(),
};

/// `/ui/` and `/ui/{file}`.
pub async fn asset(req: HttpRequest, path: Option<web::Path<String>>) -> Result<HttpResponse, ApiError> {
    let name = path.map(|p| p.into_inner()).unwrap_or_else(|| "index.html".to_string());
    UI.index_of(&name).map(|i| UI.serve(&req, i)).ok_or_else(|| ApiError::not_found("file"))
}

/// `/ui` without its slash: the page's relative paths need the slash.
pub async fn redirect_to_page() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/ui/")).finish()
}

/// Browsers ask for `/favicon.ico` on their own; answering it keeps those requests out of the 404
/// counters the `GES_HTTP_404_*` alerts read.
pub async fn favicon(req: HttpRequest) -> HttpResponse {
    UI.serve(&req, UI.index_of("icon.svg").unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_stays_small_and_every_asset_has_its_own_etag() {
        let weight = UI.weight(&["widget.js"]);
        assert!(weight < 50 * 1024, "{weight} bytes");
        assert!(UI.etags_are_distinct());
    }
}
