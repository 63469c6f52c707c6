//! OpenAPI pieces both services' documents share: the problem schema and bearer
//! authentication.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

/// An RFC 7807 problem, as every error is answered.
#[derive(Debug, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the wire format; built as JSON by `ApiError`.
pub struct Problem {
    /// A URI naming the problem type.
    r#type: String,
    /// The HTTP reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// The stable machine-readable code, e.g. `deployment_refused`.
    code: String,
    /// What happened and what to do, for a person.
    detail: String,
}

/// Adds the `bearer` security scheme.
#[derive(Debug, Clone, Copy)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
