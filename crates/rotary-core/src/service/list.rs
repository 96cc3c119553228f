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
use rotary_store::{ListKey, ListOrder, ListQuery};

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

/// A secret's position in a sorted listing, as the NextToken carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum SortKey {
    #[serde(rename = "i")]
    Int(i64),
    #[serde(rename = "s")]
    Str(String),
}

impl From<ListKey> for SortKey {
    fn from(k: ListKey) -> Self {
        match k {
            ListKey::Int(i) => Self::Int(i),
            ListKey::Str(s) => Self::Str(s),
        }
    }
}

impl From<SortKey> for ListKey {
    fn from(k: SortKey) -> Self {
        match k {
            SortKey::Int(i) => Self::Int(i),
            SortKey::Str(s) => Self::Str(s),
        }
    }
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
    order: ListOrder,
    desc: bool,
    after: Option<(ListKey, String)>,
}

fn order_of(sort_by: &str) -> ListOrder {
    match sort_by {
        "name" => ListOrder::Name,
        "last-accessed-date" => ListOrder::LastAccessed,
        "last-changed-date" => ListOrder::LastChanged,
        _ => ListOrder::Created,
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
                Some((tok.k.into(), tok.u))
            }
        };
        Ok(Self {
            sort_by: sort_by.to_owned(),
            order: order_of(sort_by),
            desc,
            after,
        })
    }

    fn token_after(&self, s: &Secret) -> Option<String> {
        let tok = Token {
            k: self.order.key_of(&s.row).into(),
            u: s.row.uid.clone(),
            b: self.sort_by.clone(),
            d: self.desc,
        };
        serde_json::to_vec(&tok)
            .ok()
            .map(|b| URL_SAFE_NO_PAD.encode(b))
    }
}

/// The filters an index can narrow by: groups of plain (not negated) prefixes of one key.
fn pushed_down(filters: &[Filter], key: FilterKey) -> Vec<Vec<String>> {
    filters
        .iter()
        .filter(|f| f.key == key && !f.values.iter().any(|v| v.starts_with('!')))
        .map(|f| f.values.clone())
        .collect()
}

/// Rows read from the store per round while filling a page.
const CHUNK: i64 = 256;

impl SecretsService {
    /// Every secret matching `filters` (AND), deleted ones only if asked: the whole
    /// namespace (reports such as compliance; listings page with [`Self::list_page`]).
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
            let c = Candidate {
                name: &s.row.name,
                description: s.doc.description.as_deref(),
                tags: s.doc.tags.as_deref().unwrap_or_default(),
                primary_region: s.doc.primary_region(&self.config.region),
                owning_service: s.doc.owning_service(),
            };
            if filter::matches(filters, &c) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// One page of the secrets matching `filters` (AND), deleted ones only if asked, in
    /// the page's order; and the token of the next page when more remain. Sorting, the
    /// position and the prefix filters an index serves are in the query; the rest of the
    /// filters are applied here, reading further chunks until the page is full.
    pub(crate) async fn list_page(
        &self,
        filters: &[Filter],
        include_deleted: bool,
        page: Page,
        limit: usize,
    ) -> Result<(Vec<Secret>, Option<String>), ApiError> {
        let mut query = ListQuery {
            namespace: self.namespace.clone(),
            order: page.order,
            descending: page.desc,
            after: page.after.clone(),
            include_deleted,
            name_prefixes: pushed_down(filters, FilterKey::Name),
            tag_key_prefixes: pushed_down(filters, FilterKey::TagKey),
            limit: 0,
        };
        let mut out: Vec<Secret> = Vec::new();
        // One more than the page, to know whether another page follows.
        while out.len() <= limit {
            // The first read is one page (enough when every row matches); later ones, for
            // filters the query could not apply, read bigger chunks.
            let want = (limit + 1 - out.len()) as i64;
            query.limit = if query.after == page.after {
                want
            } else {
                CHUNK.max(want)
            };
            let records = self.store.list_page(&query).await.map_err(internal)?;
            let exhausted = (records.len() as i64) < query.limit;
            if let Some(last) = records.last() {
                query.after = Some((query.order.key_of(&last.row), last.row.uid.clone()));
            }
            for rec in records {
                let s = Secret::from_record(rec).map_err(internal)?;
                let tags = s.doc.tags.as_deref().unwrap_or_default();
                let c = Candidate {
                    name: &s.row.name,
                    description: s.doc.description.as_deref(),
                    tags,
                    primary_region: s.doc.primary_region(&self.config.region),
                    owning_service: s.doc.owning_service(),
                };
                if filter::matches(filters, &c) {
                    out.push(s);
                    if out.len() > limit {
                        break;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        let next = if out.len() > limit {
            out.truncate(limit);
            out.last().and_then(|s| page.token_after(s))
        } else {
            None
        };
        Ok((out, next))
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
        let (items, next_token) = self
            .list_page(
                &filters,
                req.include_planned_deletion.unwrap_or(false),
                page,
                limit,
            )
            .await?;
        let mut secret_list = Vec::with_capacity(items.len());
        for s in &items {
            let mut e = if s.doc.replication.is_some() {
                self.describe_full(s).await?
            } else {
                s.describe()
            };
            e.secret_versions_to_stages = e.version_ids_to_stages.take();
            secret_list.push(e);
        }
        Ok(ListSecretsResponse {
            secret_list: Some(secret_list),
            next_token,
        })
    }
}
