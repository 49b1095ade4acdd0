//! What both backends store the same way or decide the same way, written
//! once: a dataset input's tags as a JSON list, the last step of MLflow's
//! sampled metric history, and a deployment's row.

use plinth_core::deployments::{Deployment, TrafficMode, Variant};
use plinth_core::experiments::Tag;
use plinth_core::policy::{MetricDef, Policy};
use plinth_core::runs::Metric;

/// A dataset input's tags, stored as `[{"key", "value"}, …]`.
/// SQL has no NaN: a metric's value is stored as `is_nan = 1` with value 0.
pub(crate) fn stored_value(m: &Metric) -> (f64, i16) {
    if m.value.is_nan() { (0.0, 1) } else { (m.value, 0) }
}

pub(crate) fn encode_tags(tags: &[Tag]) -> String {
    let pairs: Vec<serde_json::Value> =
        tags.iter().map(|t| serde_json::json!({"key": t.key, "value": t.value})).collect();
    serde_json::Value::Array(pairs).to_string()
}

/// Tags read back; entries that are not `{"key", "value"}` strings are left out.
pub(crate) fn decode_tags(s: &str) -> Vec<Tag> {
    serde_json::from_str::<Vec<serde_json::Value>>(s)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            Some(Tag { key: v.get("key")?.as_str()?.to_string(), value: v.get("value")?.as_str()?.to_string() })
        })
        .collect()
}

/// MLflow's sampling keeps the history's last point: unless the samples end
/// with it already, it is appended, replacing the final sample when the
/// budget of `max_points` is full.
pub(crate) fn keep_last_point(samples: &mut Vec<Metric>, last: Option<Metric>, max_points: i64) {
    let Some(last) = last else { return };
    let same = |a: &Metric, b: &Metric| {
        a.step == b.step && a.timestamp == b.timestamp && (a.value == b.value || (a.value.is_nan() && b.value.is_nan()))
    };
    if !samples.last().is_some_and(|r| same(r, &last)) {
        if samples.len() as i64 >= max_points {
            samples.pop();
        }
        samples.push(last);
    }
}

/// A stored grant; a type or permission this version cannot parse is a
/// database error, never read as a default.
pub(crate) fn grant(
    resource_type: String,
    pattern: String,
    permission: String,
) -> crate::Result<plinth_core::access::Grant> {
    use plinth_core::access::{Permission, ResourceType};
    let t = ResourceType::parse(&resource_type)
        .ok_or_else(|| crate::Error::Database(format!("stored resource type '{resource_type}'")))?;
    let p = Permission::parse(&permission)
        .ok_or_else(|| crate::Error::Database(format!("stored permission '{permission}'")))?;
    Ok(plinth_core::access::Grant { resource_type: t, pattern, permission: p })
}

/// A stored role permission row: id, role id, type, pattern, permission.
pub(crate) fn role_permission(
    (id, role_id, t, pattern, permission): (i64, i64, String, String, String),
) -> crate::Result<plinth_core::access::RolePermission> {
    Ok(plinth_core::access::RolePermission { id, role_id, grant: grant(t, pattern, permission)? })
}

/// A deployment's row: every column in `DEPLOYMENT_COLUMNS`' order, the
/// structured ones as core's types serialize them.
pub(crate) struct DeploymentRow {
    pub name: String,
    pub salt: String,
    pub variants: String,
    pub shadow: Option<String>,
    pub created_time: i64,
    pub updated_time: i64,
    pub workspace: String,
    pub mode: String,
    pub metrics: Option<String>,
    pub policy: Option<String>,
}

/// The columns of a deployment's row, in [`DeploymentRow`]'s order.
pub(crate) const DEPLOYMENT_COLUMNS: &str =
    "name, salt, variants_json, shadow_json, created_time, updated_time, workspace, mode, metrics_json, policy_json";

impl DeploymentRow {
    pub(crate) fn encode(d: &Deployment) -> crate::Result<DeploymentRow> {
        let err = |e: serde_json::Error| crate::Error::Database(format!("deployment '{}': {e}", d.name));
        Ok(DeploymentRow {
            name: d.name.clone(),
            salt: d.salt.clone(),
            variants: serde_json::to_string(&d.variants).map_err(err)?,
            shadow: d.shadow.as_ref().map(serde_json::to_string).transpose().map_err(err)?,
            created_time: d.created_time,
            updated_time: d.updated_time,
            workspace: d.workspace.clone(),
            mode: d.mode.as_str().to_string(),
            metrics: (!d.metrics.is_empty()).then(|| serde_json::to_string(&d.metrics)).transpose().map_err(err)?,
            policy: d.policy.as_ref().map(serde_json::to_string).transpose().map_err(err)?,
        })
    }

    /// A stored row this version cannot read is a database error, never a default.
    pub(crate) fn decode(self) -> crate::Result<Deployment> {
        let name = self.name;
        let corrupt = |what: &str, e: serde_json::Error| {
            crate::Error::Database(format!("deployment '{name}': stored {what}: {e}"))
        };
        let variants: Vec<Variant> = serde_json::from_str(&self.variants).map_err(|e| corrupt("variants", e))?;
        let shadow: Option<Variant> =
            self.shadow.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| corrupt("shadow", e))?;
        let metrics: Vec<MetricDef> = self
            .metrics
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| corrupt("metrics", e))?
            .unwrap_or_default();
        let policy: Option<Policy> =
            self.policy.map(|s| serde_json::from_str(&s)).transpose().map_err(|e| corrupt("policy", e))?;
        let mode = TrafficMode::parse(&self.mode)
            .map_err(|_| crate::Error::Database(format!("deployment '{name}': stored mode '{}'", self.mode)))?;
        Ok(Deployment {
            salt: self.salt,
            variants,
            shadow,
            mode,
            metrics,
            policy,
            created_time: self.created_time,
            updated_time: self.updated_time,
            workspace: self.workspace,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip_and_the_last_point_is_kept() {
        let tags = vec![Tag::new("mlflow.data.context", "eval"), Tag::new("k", "v")];
        assert_eq!(decode_tags(&encode_tags(&tags)), tags);
        assert!(decode_tags("not json").is_empty());
        let m = |step| Metric::new("loss", step as f64, step, step);
        let mut s = vec![m(0), m(5)];
        keep_last_point(&mut s, Some(m(9)), 2);
        assert_eq!(s.iter().map(|p| p.step).collect::<Vec<_>>(), [0, 9], "replaces the final sample when full");
        keep_last_point(&mut s, Some(m(9)), 2);
        assert_eq!(s.len(), 2, "already last");
        keep_last_point(&mut s, Some(m(10)), 5);
        assert_eq!(s.len(), 3);
    }
}
