//! ListSecrets: filters, ordering and position-based pagination (spec §4.8).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rotary_wire::dto::{Filter as WireFilter, ListSecretsRequest, ListSecretsResponse};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError};
use serde::{Deserialize, Serialize};

use super::{internal, msg, Ctx, SecretsService};
use crate::filter::{self, Candidate, Filter, FilterKey};
use crate::secret::Secret;

/// Turns wire filters into checked filters.
pub(crate) fn parse_filters(filters: &[WireFilter]) -> Result<Vec<Filter>, ApiError> {
    filters
        .iter()
        .map(|f| {
            let key = f
                .key
                .as_deref()
                .and_then(FilterKey::parse)
                .ok_or_else(|| api_error!(InvalidParameterException, "Invalid filter key"))?;
            let values = f.values.clone().ok_or_else(|| {
                api_error!(
                    InvalidParameterException,
                    "Invalid filter values for key: {}",
                    key.as_str()
                )
            })?;
            Ok(Filter { key, values })
        })
        .collect()
}

/// A secret's position in a sorted listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum SortKey {
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "s")]
    Str(String),
}

#[derive(Serialize, Deserialize)]
struct Token {
    /// Sort key of the last secret returned.
    k: SortKey,
    /// Its internal id (tie-breaker).
    u: String,
    /// The sort the token belongs to.
    b: String,
    d: bool,
}

/// A page request over a sorted listing.
pub(crate) struct Page {
    sort_by: String,
    desc: bool,
    after: Option<(SortKey, String)>,
}

fn sort_key(s: &Secret, sort_by: &str) -> SortKey {
    match sort_by {
        "name" => SortKey::Str(s.row.name.clone()),
        "last-accessed-date" => SortKey::Int(s.row.last_accessed_ms.unwrap_or(-1)),
        "last-changed-date" => SortKey::Int(s.row.last_changed_ms),
        _ => SortKey::Int(s.row.created_ms),
    }
}

impl Page {
    /// A page of a listing sorted by creation time, oldest first.
    pub(crate) fn from_token(token: Option<&str>) -> Result<Self, ApiError> {
        Self::sorted(token, "created-date", false)
    }

    fn sorted(token: Option<&str>, sort_by: &str, desc: bool) -> Result<Self, ApiError> {
        let after = match token {
            None => None,
            Some(t) => {
                let bad = || api_error!(InvalidNextTokenException, "{}", msg::BAD_NEXT_TOKEN);
                let bytes = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
                let tok: Token = serde_json::from_slice(&bytes).map_err(|_| bad())?;
                if tok.b != sort_by || tok.d != desc {
                    return Err(bad());
                }
                Some((tok.k, tok.u))
            }
        };
        Ok(Self {
            sort_by: sort_by.to_owned(),
            desc,
            after,
        })
    }

    /// Sorts `items`, skips to the token's position and takes `limit`; returns the page and
    /// the next token when more remain.
    pub(crate) fn take(self, items: Vec<Secret>, limit: usize) -> (Vec<Secret>, Option<String>) {
        let mut keyed: Vec<((SortKey, String), Secret)> = items
            .into_iter()
            .map(|s| ((sort_key(&s, &self.sort_by), s.row.uid.clone()), s))
            .collect();
        keyed.sort_by(|a, b| {
            if self.desc {
                b.0.cmp(&a.0)
            } else {
                a.0.cmp(&b.0)
            }
        });
        let start = match &self.after {
            None => 0,
            Some(after) => keyed
                .iter()
                .position(|(k, _)| if self.desc { k < after } else { k > after })
                .unwrap_or(keyed.len()),
        };
        let mut rest = keyed.into_iter().skip(start);
        let page: Vec<_> = rest.by_ref().take(limit).collect();
        let next = match (rest.next(), page.last()) {
            (Some(_), Some(((k, u), _))) => {
                let tok = Token {
                    k: k.clone(),
                    u: u.clone(),
                    b: self.sort_by.clone(),
                    d: self.desc,
                };
                serde_json::to_vec(&tok)
                    .ok()
                    .map(|b| URL_SAFE_NO_PAD.encode(b))
            }
            _ => None,
        };
        (page.into_iter().map(|(_, s)| s).collect(), next)
    }
}

impl SecretsService {
    /// Every secret matching `filters` (AND), deleted ones only if asked.
    pub(crate) async fn list_matching(
        &self,
        filters: &[Filter],
        include_deleted: bool,
    ) -> Result<Vec<Secret>, ApiError> {
        let records = self.store.list(&self.namespace).await.map_err(internal)?;
        let mut out = Vec::new();
        for rec in records {
            let s = Secret::from_record(rec).map_err(internal)?;
            if s.is_deleted() && !include_deleted {
                continue;
            }
            let tags = s.doc.tags.clone().unwrap_or_default();
            let c = Candidate {
                name: &s.row.name,
                description: s.doc.description.as_deref(),
                tags: &tags,
                primary_region: None,
                owning_service: s.doc.owning_service(),
            };
            if filter::matches(filters, &c) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// ListSecrets.
    pub async fn list_secrets(
        &self,
        _cx: &Ctx,
        req: ListSecretsRequest,
    ) -> Result<ListSecretsResponse, ApiError> {
        req.check()?;
        let filters = parse_filters(req.filters.as_deref().unwrap_or_default())?;
        let sort_by = req.sort_by.as_deref().unwrap_or("created-date");
        let desc = req.sort_order.as_deref() == Some("desc");
        let page = Page::sorted(req.next_token.as_deref(), sort_by, desc)?;
        let limit = req.max_results.unwrap_or(100) as usize;
        let secrets = self
            .list_matching(&filters, req.include_planned_deletion.unwrap_or(false))
            .await?;
        let (items, next_token) = page.take(secrets, limit);
        let secret_list = items
            .iter()
            .map(|s| {
                let mut e = s.describe();
                e.secret_versions_to_stages = e.version_ids_to_stages.take();
                e
            })
            .collect();
        Ok(ListSecretsResponse {
            secret_list: Some(secret_list),
            next_token,
        })
    }
}
