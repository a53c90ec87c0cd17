//! The API's OpenAPI document, generated from the handlers' annotations and
//! the types they take and give (utoipa): served at `/api/v1/openapi.json`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "scalelab",
        description = "The scalelab engine as a service: runs queue and go one at a time \
            on the server's machine. Every call needs `Authorization: Bearer TOKEN` \
            (the token `scalelab serve` prints). docs/API.md explains it with curl examples."
    ),
    paths(
        api::machine,
        api::cores,
        api::create,
        api::list,
        api::one,
        api::cancel,
        api::events,
        api::openapi
    ),
    components(schemas(
        api::RunState,
        crate::server::machine::CoreSample,
        crate::spec::RunSpec
    )),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document, with this build's version.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}
