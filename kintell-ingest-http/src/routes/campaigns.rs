//! The campaign report.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use kintell_ingest::domain::Key;
use kintell_ingest::reports::{CampaignMetrics, Reports};
use serde::Deserialize;

use super::{option, rejected};
use crate::{ApiError, AppState};

/// The report's filter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct MetricsQuery {
    /// Only campaigns of this company (slug).
    company: Option<String>,
}

/// Campaign metrics and capacity (`report campaigns --json`).
#[utoipa::path(
    get,
    path = "/v1/campaigns/metrics",
    params(MetricsQuery),
    responses((status = 200, description = "one entry per campaign"), (status = 400, description = "an unknown company", body = super::ErrorBody)),
    security(("bearer" = []))
)]
pub(crate) async fn metrics(
    State(state): State<AppState>,
    query: Result<Query<MetricsQuery>, QueryRejection>,
) -> Result<Json<Vec<CampaignMetrics>>, ApiError> {
    let Query(q) = query.map_err(rejected)?;
    let company = q
        .company
        .as_deref()
        .map(|c| option("company", Key::parse(c)))
        .transpose()?;
    Ok(Json(
        Reports::new(state.store.clone())
            .campaigns(company.as_ref())
            .await?,
    ))
}
