//! The operations console (`/console/`, issue 26): plain HTML, CSS and JavaScript modules embedded
//! in the binary (`assets`), internal listener only. The page calls only this origin's admin API
//! (its Content-Security-Policy says so), with the operator's token as a bearer header; it may
//! not be framed.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::ApiError;
use crate::http::assets::{Asset, AssetSet, CSS, HTML, JS};

static CONSOLE: AssetSet = AssetSet {
    assets: &[
        Asset { name: "index.html", content_type: HTML, body: include_str!("console/index.html") },
        Asset { name: "main.js", content_type: JS, body: include_str!("console/main.js") },
        Asset { name: "lib.js", content_type: JS, body: include_str!("console/lib.js") },
        Asset { name: "strings.js", content_type: JS, body: include_str!("console/strings.js") },
        Asset { name: "callbacks.js", content_type: JS, body: include_str!("console/callbacks.js") },
        Asset { name: "services.js", content_type: JS, body: include_str!("console/services.js") },
        Asset { name: "now.js", content_type: JS, body: include_str!("console/now.js") },
        Asset { name: "style.css", content_type: CSS, body: include_str!("console/style.css") },
    ],
    page_policy: "default-src 'self'; img-src 'self' data:; style-src 'self'; base-uri 'none'; form-action 'none'; \
                  frame-ancestors 'none'",
    any_origin: false,
    etags: OnceLock::new(),
};

/// `/console/` and `/console/{file}`.
pub async fn asset(req: HttpRequest, path: Option<web::Path<String>>) -> Result<HttpResponse, ApiError> {
    let name = path.map(|p| p.into_inner()).unwrap_or_else(|| "index.html".to_string());
    CONSOLE.index_of(&name).map(|i| CONSOLE.serve(&req, i)).ok_or_else(|| ApiError::not_found("file"))
}

/// `/console` without its slash.
pub async fn redirect_to_console() -> HttpResponse {
    HttpResponse::PermanentRedirect().insert_header((header::LOCATION, "/console/")).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26: the first load (every file, and the booking page's icon it shows) is under 60 KB.
    #[test]
    fn the_console_stays_small_and_every_file_has_its_own_etag() {
        let weight = CONSOLE.weight(&[]) + include_str!("ui/icon.svg").len();
        assert!(weight < 60 * 1024, "{weight} bytes");
        assert!(CONSOLE.etags_are_distinct());
    }
}
