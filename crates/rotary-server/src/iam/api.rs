//! Rotary's IAM operations (`X-Amz-Target: rotary.<Op>`), with AWS IAM's member names
//! (PascalCase JSON instead of IAM's query protocol).
//!
//! Answers never hold an access-key secret, except CreateAccessKey's, which is the only
//! place it is ever shown. Errors carry AWS IAM's wording; their codes are the Secrets
//! Manager codes that fit (see [`From<IamError> for ApiError`]).

use rotary_wire::{api_error, ApiError, ErrorCode, Timestamp};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{AccessKeyInfo, GroupInfo, Iam, IamError, KeyStatus, Tag, UserInfo};

/// Operations of this module, all under `rotary:` as IAM actions.
pub const OPERATIONS: &[&str] = &[
    "CreateUser",
    "GetUser",
    "ListUsers",
    "DeleteUser",
    "TagUser",
    "UntagUser",
    "ListUserTags",
    "CreateAccessKey",
    "ListAccessKeys",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "CreateGroup",
    "GetGroup",
    "ListGroups",
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "ListGroupsForUser",
    "PutUserPolicy",
    "GetUserPolicy",
    "DeleteUserPolicy",
    "ListUserPolicies",
    "PutGroupPolicy",
    "GetGroupPolicy",
    "DeleteGroupPolicy",
    "ListGroupPolicies",
];

impl From<IamError> for ApiError {
    fn from(e: IamError) -> Self {
        let code = match &e {
            IamError::NoSuchEntity(_) => ErrorCode::ResourceNotFoundException,
            IamError::EntityAlreadyExists(_) => ErrorCode::ResourceExistsException,
            IamError::DeleteConflict(_) => ErrorCode::InvalidRequestException,
            IamError::LimitExceeded(_) => ErrorCode::LimitExceededException,
            IamError::MalformedPolicyDocument(_) => ErrorCode::MalformedPolicyDocumentException,
            IamError::InvalidInput(_) => ErrorCode::InvalidParameterException,
            IamError::Store(_) | IamError::Corrupt { .. } | IamError::Seal(_) => {
                tracing::error!(error = %e, "IAM operation failed");
                return ApiError::internal();
            }
        };
        ApiError::new(code, e.to_string())
    }
}

/// Every member any IAM operation takes; each operation reads those it needs.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    user_name: Option<String>,
    group_name: Option<String>,
    path: Option<String>,
    path_prefix: Option<String>,
    tags: Option<Vec<Tag>>,
    tag_keys: Option<Vec<String>>,
    access_key_id: Option<String>,
    status: Option<String>,
    policy_name: Option<String>,
    policy_document: Option<String>,
    marker: Option<String>,
    max_items: Option<i64>,
}

fn required<'a>(v: &'a Option<String>, member: &str) -> Result<&'a str, ApiError> {
    v.as_deref().ok_or_else(|| {
        api_error!(
            InvalidParameterException,
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: \
             Member must not be null"
        )
    })
}

fn decode(body: &[u8]) -> Result<Request, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Request::default());
    }
    // The serde message is not echoed: it could quote the body.
    serde_json::from_slice(body).map_err(|_| {
        api_error!(
            SerializationException,
            "The request body is not valid JSON for this operation."
        )
    })
}

fn encode(v: &Value) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v).map_err(|_| ApiError::internal())
}

fn user_json(u: &UserInfo) -> Value {
    let mut v = json!({
        "Path": u.path,
        "UserName": u.name,
        "UserId": u.user_id,
        "Arn": u.arn,
        "CreateDate": Timestamp(u.create_date_ms),
    });
    if !u.tags.is_empty() {
        v["Tags"] = json!(u.tags);
    }
    v
}

fn group_json(g: &GroupInfo) -> Value {
    json!({
        "Path": g.path,
        "GroupName": g.name,
        "GroupId": g.group_id,
        "Arn": g.arn,
        "CreateDate": Timestamp(g.create_date_ms),
    })
}

fn key_json(k: &AccessKeyInfo) -> Value {
    let mut v = json!({
        "UserName": k.user_name,
        "AccessKeyId": k.access_key_id,
        "Status": k.status.as_str(),
        "CreateDate": Timestamp(k.create_date_ms),
    });
    if let Some(t) = k.last_used_ms {
        v["LastUsedDate"] = json!(Timestamp(t));
    }
    v
}

/// One page of `items` (sorted by `key`) after `marker`, at most `max_items` (1–1000,
/// default 100): the items and the next marker.
fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    marker: Option<&str>,
    max_items: Option<i64>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = match max_items {
        None => 100,
        Some(n @ 1..=1000) => n as usize,
        Some(_) => {
            return Err(api_error!(
                InvalidParameterException,
                "1 validation error detected: Value at 'maxItems' failed to satisfy constraint: \
                 Member must have value between 1 and 1000"
            ))
        }
    };
    let mut rest: Vec<T> = match marker {
        Some(m) => items.into_iter().filter(|i| key(i).as_str() > m).collect(),
        None => items,
    };
    if rest.len() <= max {
        return Ok((rest, None));
    }
    rest.truncate(max);
    let next = rest.last().map(&key);
    Ok((rest, next))
}

fn listing(member: &str, items: Vec<Value>, next: Option<String>) -> Value {
    let mut v = json!({ member: items, "IsTruncated": next.is_some() });
    if let Some(m) = next {
        v["Marker"] = json!(m);
    }
    v
}

fn names(member: &str, names: Vec<String>) -> Value {
    json!({ member: names, "IsTruncated": false })
}

fn status(req: &Request) -> Result<KeyStatus, ApiError> {
    let s = required(&req.status, "status")?;
    KeyStatus::parse(s).ok_or_else(|| {
        api_error!(
            InvalidParameterException,
            "1 validation error detected: Value '{s}' at 'status' failed to satisfy constraint: \
             Member must satisfy enum value set: [Active, Inactive]"
        )
    })
}

/// Runs one IAM operation; `op` is one of [`OPERATIONS`].
pub async fn handle(iam: &Iam, op: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req = decode(body)?;
    let empty = || encode(&json!({}));
    match op {
        "CreateUser" => {
            let name = required(&req.user_name, "userName")?;
            let tags = req.tags.clone().unwrap_or_default();
            let u = iam.create_user(name, req.path.as_deref(), tags).await?;
            encode(&json!({ "User": user_json(&u) }))
        }
        "GetUser" => {
            let u = iam.get_user(required(&req.user_name, "userName")?)?;
            encode(&json!({ "User": user_json(&u) }))
        }
        "ListUsers" => {
            let users = iam.list_users(req.path_prefix.as_deref());
            let (users, next) = page(
                users,
                |u| u.name.to_ascii_lowercase(),
                req.marker.as_deref(),
                req.max_items,
            )?;
            encode(&listing(
                "Users",
                users.iter().map(|u| user_json(u)).collect(),
                next,
            ))
        }
        "DeleteUser" => {
            iam.delete_user(required(&req.user_name, "userName")?)
                .await?;
            empty()
        }
        "TagUser" => {
            let name = required(&req.user_name, "userName")?;
            let tags = req.tags.clone().ok_or_else(|| {
                api_error!(
                    InvalidParameterException,
                    "1 validation error detected: Value null at 'tags' failed to satisfy \
                     constraint: Member must not be null"
                )
            })?;
            iam.tag_user(name, tags).await?;
            empty()
        }
        "UntagUser" => {
            let name = required(&req.user_name, "userName")?;
            let keys = req.tag_keys.clone().ok_or_else(|| {
                api_error!(
                    InvalidParameterException,
                    "1 validation error detected: Value null at 'tagKeys' failed to satisfy \
                     constraint: Member must not be null"
                )
            })?;
            iam.untag_user(name, &keys).await?;
            empty()
        }
        "ListUserTags" => {
            let u = iam.get_user(required(&req.user_name, "userName")?)?;
            encode(&json!({ "Tags": u.tags, "IsTruncated": false }))
        }
        "CreateAccessKey" => {
            let k = iam
                .create_access_key(required(&req.user_name, "userName")?)
                .await?;
            // The only answer that ever holds a secret access key.
            encode(&json!({ "AccessKey": {
                "AccessKeyId": k.info.access_key_id,
                "SecretAccessKey": k.secret_access_key.expose(),
                "UserName": k.info.user_name,
                "Status": k.info.status.as_str(),
                "CreateDate": Timestamp(k.info.create_date_ms),
            }}))
        }
        "ListAccessKeys" => {
            let keys = iam.list_access_keys(required(&req.user_name, "userName")?)?;
            encode(&json!({
                "AccessKeyMetadata": keys.iter().map(key_json).collect::<Vec<_>>(),
                "IsTruncated": false,
            }))
        }
        "UpdateAccessKey" => {
            let akid = required(&req.access_key_id, "accessKeyId")?;
            let st = status(&req)?;
            iam.update_access_key(req.user_name.as_deref(), akid, st)
                .await?;
            empty()
        }
        "DeleteAccessKey" => {
            let akid = required(&req.access_key_id, "accessKeyId")?;
            iam.delete_access_key(req.user_name.as_deref(), akid)
                .await?;
            empty()
        }
        "CreateGroup" => {
            let name = required(&req.group_name, "groupName")?;
            let g = iam.create_group(name, req.path.as_deref()).await?;
            encode(&json!({ "Group": group_json(&g) }))
        }
        "GetGroup" => {
            let g = iam.get_group(required(&req.group_name, "groupName")?)?;
            let users: Vec<Value> = g
                .members
                .iter()
                .filter_map(|m| iam.user(m))
                .map(|u| user_json(&u))
                .collect();
            encode(&json!({ "Group": group_json(&g), "Users": users, "IsTruncated": false }))
        }
        "ListGroups" => {
            let groups = iam.list_groups(req.path_prefix.as_deref());
            let (groups, next) = page(
                groups,
                |g| g.name.to_ascii_lowercase(),
                req.marker.as_deref(),
                req.max_items,
            )?;
            encode(&listing(
                "Groups",
                groups.iter().map(group_json).collect(),
                next,
            ))
        }
        "DeleteGroup" => {
            iam.delete_group(required(&req.group_name, "groupName")?)
                .await?;
            empty()
        }
        "AddUserToGroup" => {
            let g = required(&req.group_name, "groupName")?;
            let u = required(&req.user_name, "userName")?;
            iam.add_user_to_group(g, u).await?;
            empty()
        }
        "RemoveUserFromGroup" => {
            let g = required(&req.group_name, "groupName")?;
            let u = required(&req.user_name, "userName")?;
            iam.remove_user_from_group(g, u).await?;
            empty()
        }
        "ListGroupsForUser" => {
            let groups = iam.groups_for_user(required(&req.user_name, "userName")?)?;
            encode(&json!({
                "Groups": groups.iter().map(group_json).collect::<Vec<_>>(),
                "IsTruncated": false,
            }))
        }
        "PutUserPolicy" => {
            let u = required(&req.user_name, "userName")?;
            let p = required(&req.policy_name, "policyName")?;
            let d = required(&req.policy_document, "policyDocument")?;
            iam.put_user_policy(u, p, d).await?;
            empty()
        }
        "GetUserPolicy" => {
            let u = required(&req.user_name, "userName")?;
            let p = required(&req.policy_name, "policyName")?;
            let doc = iam.get_user_policy(u, p)?;
            let name = iam.get_user(u)?.name.clone();
            encode(&json!({ "UserName": name, "PolicyName": p, "PolicyDocument": doc }))
        }
        "DeleteUserPolicy" => {
            let u = required(&req.user_name, "userName")?;
            let p = required(&req.policy_name, "policyName")?;
            iam.delete_user_policy(u, p).await?;
            empty()
        }
        "ListUserPolicies" => {
            let u = required(&req.user_name, "userName")?;
            encode(&names("PolicyNames", iam.list_user_policies(u)?))
        }
        "PutGroupPolicy" => {
            let g = required(&req.group_name, "groupName")?;
            let p = required(&req.policy_name, "policyName")?;
            let d = required(&req.policy_document, "policyDocument")?;
            iam.put_group_policy(g, p, d).await?;
            empty()
        }
        "GetGroupPolicy" => {
            let g = required(&req.group_name, "groupName")?;
            let p = required(&req.policy_name, "policyName")?;
            let doc = iam.get_group_policy(g, p)?;
            let name = iam.get_group(g)?.name;
            encode(&json!({ "GroupName": name, "PolicyName": p, "PolicyDocument": doc }))
        }
        "DeleteGroupPolicy" => {
            let g = required(&req.group_name, "groupName")?;
            let p = required(&req.policy_name, "policyName")?;
            iam.delete_group_policy(g, p).await?;
            empty()
        }
        "ListGroupPolicies" => {
            let g = required(&req.group_name, "groupName")?;
            encode(&names("PolicyNames", iam.list_group_policies(g)?))
        }
        other => Err(api_error!(
            UnknownOperationException,
            "Unknown operation rotary.{other}."
        )),
    }
}

impl Iam {
    /// The resource an IAM operation acts on, for authorizing `rotary:<op>`: the ARN of the
    /// user or group it targets (for a user that does not exist yet, the ARN it would get),
    /// or `*` for listings and unreadable bodies.
    ///
    /// Group-membership operations act on the group, as in IAM; access-key operations on
    /// the key's user.
    pub fn resource_arn(&self, op: &str, body: &[u8]) -> String {
        let Ok(req) = decode(body) else {
            return "*".to_owned();
        };
        let user = |name: &str| match self.user(name) {
            Some(u) => u.arn.clone(),
            None => {
                let path = req.path.as_deref().unwrap_or("/");
                self.user_arn_with_path(path, name)
            }
        };
        let group = |name: &str| match self.get_group(name) {
            Ok(g) => g.arn,
            Err(_) => self.group_arn_with_path(req.path.as_deref().unwrap_or("/"), name),
        };
        match op {
            "ListUsers" | "ListGroups" => "*".to_owned(),
            "CreateGroup"
            | "GetGroup"
            | "DeleteGroup"
            | "AddUserToGroup"
            | "RemoveUserFromGroup"
            | "PutGroupPolicy"
            | "GetGroupPolicy"
            | "DeleteGroupPolicy"
            | "ListGroupPolicies" => req
                .group_name
                .as_deref()
                .map_or_else(|| "*".to_owned(), group),
            "UpdateAccessKey" | "DeleteAccessKey" => {
                let owner = req
                    .user_name
                    .clone()
                    .or_else(|| req.access_key_id.as_deref().and_then(|k| self.key_user(k)));
                owner.as_deref().map_or_else(|| "*".to_owned(), user)
            }
            _ => req
                .user_name
                .as_deref()
                .map_or_else(|| "*".to_owned(), user),
        }
    }
}
