//! Platform usage from the audit trail and the store: activity per day and
//! week, lead times from a model's first run and first registration to its
//! first deployment, the served models not retrained lately, job outcomes.
//! (`plinth-serving` adds the requests each deployment answered.)

use std::collections::{BTreeMap, HashMap, HashSet};

use plinth_core::audit::{Action, AuditQuery};
use plinth_core::deployments::Deployment;
use plinth_core::jobs::JobStatus;
use plinth_core::query::{ModelVersionClause, ModelVersionSortKey, Sort, TextMatch};
use plinth_core::usage::{
    DAY_MS, DayUsage, JobUsage, LeadTime, ServedModel, Usage, UsageQuery, WeekUsage, WorkspaceUsage, median,
    user_of_actor,
};

use crate::{ModelVersionQuery, Platform, RegisteredModelQuery, Result};

/// At most this many jobs (the newest) are read for a report.
const MAX_JOBS: i64 = 10_000;

impl Platform {
    /// The usage report for `query`'s window: the whole platform's with a
    /// line per workspace, or one workspace's. `requests` is left empty for
    /// serving to fill.
    pub async fn usage(&self, query: UsageQuery) -> Result<Usage> {
        query.check()?;
        let scope = query.workspace.clone();
        let in_scope = |ws: &str| scope.as_deref().is_none_or(|s| s == ws);
        let first_day = query.first_day();
        let today = query.now.div_euclid(DAY_MS);
        let rows = self.store.audit_activity(first_day * DAY_MS).await?;

        // Per day: counts by action, distinct users and workspaces.
        type Active = (HashSet<String>, HashSet<String>);
        let mut days: BTreeMap<i64, (DayUsage, Active)> = (first_day..=today)
            .map(|d| (d, (DayUsage { day: d * DAY_MS, ..Default::default() }, Active::default())))
            .collect();
        let mut weeks: BTreeMap<i64, Active> = BTreeMap::new();
        let mut teams: BTreeMap<String, (WorkspaceUsage, HashSet<String>)> = BTreeMap::new();
        let (mut active_1d, mut active_7d, mut active_all) = (Active::default(), Active::default(), Active::default());
        for r in rows.iter().filter(|r| in_scope(&r.workspace)) {
            let Some((day, (users, workspaces))) = days.get_mut(&r.day) else { continue };
            let (team, team_users) = teams.entry(r.workspace.clone()).or_insert_with(|| {
                (WorkspaceUsage { workspace: r.workspace.clone(), ..Default::default() }, HashSet::new())
            });
            let counter = |d: &mut DayUsage, t: &mut WorkspaceUsage| match r.action {
                Action::RunCreate => (d.runs_created += r.count, t.runs_created += r.count),
                Action::VersionCreate => (d.versions_registered += r.count, t.versions_registered += r.count),
                Action::DeploymentCreate => (d.deployments_created += r.count, t.deployments_created += r.count),
                Action::JobSubmit => (d.jobs_submitted += r.count, t.jobs_submitted += r.count),
                _ => ((), ()),
            };
            counter(day, team);
            day.changes += r.count;
            team.changes += r.count;
            // Plinth's own work (jobs, the first administrator) is nobody's activity.
            if r.actor.starts_with(plinth_core::audit::SYSTEM_PREFIX) {
                continue;
            }
            let user = user_of_actor(&r.actor).to_string();
            let ws = r.workspace.clone();
            users.insert(user.clone());
            workspaces.insert(ws.clone());
            team_users.insert(user.clone());
            // 1970-01-01 was a Thursday: day 3 of the week that starts on Monday, day -3.
            let monday = r.day - (r.day + 3).rem_euclid(7);
            let week = weeks.entry(monday).or_default();
            week.0.insert(user.clone());
            week.1.insert(ws.clone());
            if r.day == today {
                active_1d.0.insert(user.clone());
                active_1d.1.insert(ws.clone());
            }
            if r.day > today - 7 {
                active_7d.0.insert(user.clone());
                active_7d.1.insert(ws.clone());
            }
            active_all.0.insert(user);
            active_all.1.insert(ws);
        }
        let daily = days
            .into_values()
            .map(|(mut d, (users, workspaces))| {
                d.active_users = users.len() as i64;
                d.active_workspaces = workspaces.len() as i64;
                d
            })
            .collect();
        let weekly = weeks
            .into_iter()
            .map(|(monday, (users, workspaces))| WeekUsage {
                week: monday * DAY_MS,
                active_users: users.len() as i64,
                active_workspaces: workspaces.len() as i64,
            })
            .collect();
        let per_workspace = teams
            .into_values()
            .map(|(mut t, users)| {
                t.active_users = users.len() as i64;
                t
            })
            .collect();
        let workspaces: Vec<String> = match &scope {
            Some(ws) => vec![self.store.get_workspace(ws).await?.name],
            None => self.store.list_workspaces().await?.into_iter().map(|w| w.name).collect(),
        };
        let mut registered_models = 0;
        for ws in &workspaces {
            registered_models += self.in_workspace(ws).count_registered_models().await?;
        }

        let deployments: Vec<Deployment> =
            self.store.list_deployments().await?.into_iter().filter(|d| in_scope(&d.workspace)).collect();
        let lead_times = self.lead_times(&deployments).await?;
        let served = self.served(&deployments, &query).await?;
        let key = |s: &'_ ServedModel| (s.workspace.clone(), s.model.clone(), s.version);
        let distinct_served: HashSet<_> = served.iter().map(key).collect();
        let distinct_stale: HashSet<_> = served.iter().filter(|s| s.stale).map(key).collect();
        let stale_share =
            (!distinct_served.is_empty()).then(|| distinct_stale.len() as f64 / distinct_served.len() as f64);

        Ok(Usage {
            query,
            daily,
            weekly,
            active_users_1d: active_1d.0.len() as i64,
            active_users_7d: active_7d.0.len() as i64,
            active_users_window: active_all.0.len() as i64,
            active_workspaces_1d: active_1d.1.len() as i64,
            active_workspaces_7d: active_7d.1.len() as i64,
            active_workspaces_window: active_all.1.len() as i64,
            workspaces: workspaces.len() as i64,
            per_workspace,
            users: self.store.list_users().await?.len() as i64,
            registered_models,
            deployments: deployments.len() as i64,
            median_run_to_deploy_ms: median(lead_times.iter().filter_map(LeadTime::run_to_deploy_ms).collect()),
            median_registration_to_deploy_ms: median(
                lead_times.iter().map(LeadTime::registration_to_deploy_ms).collect(),
            ),
            lead_times,
            served,
            stale_share,
            jobs: self.job_usage(first_day * DAY_MS, scope.as_deref()).await?,
            requests: Vec::new(),
        })
    }

    async fn count_registered_models(&self) -> Result<i64> {
        let (mut count, mut offset) = (0, 0);
        loop {
            let query = RegisteredModelQuery { max_results: 1000, offset, ..Default::default() };
            let page = self.store.search_registered_models(query).await?;
            count += page.items.len() as i64;
            match page.next_offset {
                Some(next) => offset = next,
                None => return Ok(count),
            }
        }
    }

    /// Per model a deployment serves now: its first run and registration, and
    /// when a deployment first served it (the trail's first create or update
    /// of a deployment naming it; the deployment's creation for deployments
    /// older than the trail).
    async fn lead_times(&self, deployments: &[Deployment]) -> Result<Vec<LeadTime>> {
        // Per (workspace, model): when and where it was first served.
        let mut first_deployed: HashMap<(String, String), (i64, String)> = HashMap::new();
        for d in deployments {
            let records = self.deployment_history(&d.name).await?;
            for v in d.variants.iter().filter(|v| v.weight > 0) {
                let named = format!("={}:", v.model);
                let since = records
                    .iter()
                    .filter(|r| r.after.as_deref().is_some_and(|a| a.contains(&named)))
                    .map(|r| r.time)
                    .min()
                    .unwrap_or(d.created_time);
                let key = (d.workspace.clone(), v.model.name.clone());
                let entry = first_deployed.entry(key).or_insert((since, d.name.clone()));
                if since < entry.0 {
                    *entry = (since, d.name.clone());
                }
            }
        }
        let mut out = Vec::with_capacity(first_deployed.len());
        for ((workspace, model), (deployed_time, deployment)) in first_deployed {
            let store = self.store.in_workspace(&workspace);
            let first = ModelVersionQuery {
                filter: vec![ModelVersionClause::Name(TextMatch::Eq(model.clone()))],
                order_by: vec![Sort::asc(ModelVersionSortKey::Version)],
                max_results: 1,
                offset: 0,
            };
            let Some(version) = store.search_model_versions(first).await?.items.into_iter().next() else {
                continue;
            };
            let first_run_time = match &version.run_id {
                Some(run_id) => self.store.get_run(run_id).await.ok().map(|r| r.info.start_time),
                None => None,
            };
            out.push(LeadTime {
                workspace,
                model,
                first_run_time,
                registered_time: version.creation_timestamp,
                deployed_time,
                deployment,
            });
        }
        out.sort_by(|a, b| (&a.workspace, &a.model).cmp(&(&b.workspace, &b.model)));
        Ok(out)
    }

    /// Every create and update of deployment `name` the trail holds (all
    /// pages: the first time a model was named may be long ago).
    async fn deployment_history(&self, name: &str) -> Result<Vec<plinth_core::audit::AuditRecord>> {
        let mut out = Vec::new();
        let mut before_seq = None;
        loop {
            let page = self
                .store
                .search_audit(AuditQuery {
                    resource: Some(plinth_core::audit::resource::deployment(name)),
                    before_seq,
                    max_results: plinth_core::audit::MAX_AUDIT_RESULTS,
                    ..Default::default()
                })
                .await?;
            out.extend(
                page.items
                    .into_iter()
                    .filter(|r| matches!(r.action, Action::DeploymentCreate | Action::DeploymentUpdate)),
            );
            match page.next_offset {
                Some(seq) => before_seq = Some(seq),
                None => return Ok(out),
            }
        }
    }

    /// The version each weighted variant serves now, stale when registered
    /// more than `stale_days` ago.
    async fn served(&self, deployments: &[Deployment], query: &UsageQuery) -> Result<Vec<ServedModel>> {
        let mut out = Vec::new();
        for d in deployments {
            for v in d.variants.iter().filter(|v| v.weight > 0) {
                // A reference that resolves to nothing (an alias removed) serves nothing.
                let Ok(version) = self.resolve_served_model(d, &v.model).await else { continue };
                out.push(ServedModel {
                    workspace: d.workspace.clone(),
                    deployment: d.name.clone(),
                    variant: v.name.clone(),
                    model: version.name.clone(),
                    version: version.version,
                    registered_time: version.creation_timestamp,
                    stale: query.now - version.creation_timestamp > query.stale_days * DAY_MS,
                });
            }
        }
        Ok(out)
    }

    async fn job_usage(&self, since: i64, scope: Option<&str>) -> Result<JobUsage> {
        let jobs = self.store.list_jobs(None, MAX_JOBS).await?;
        let mut usage = JobUsage::default();
        let mut durations = Vec::new();
        let counted = |j: &&plinth_core::jobs::Job| j.created_time >= since && scope.is_none_or(|s| s == j.workspace);
        for job in jobs.iter().filter(counted) {
            usage.submitted += 1;
            match job.status {
                JobStatus::Succeeded => usage.succeeded += 1,
                JobStatus::Failed => usage.failed += 1,
                JobStatus::Cancelled => usage.cancelled += 1,
                JobStatus::Queued | JobStatus::Running => usage.unfinished += 1,
            }
            if matches!(job.status, JobStatus::Succeeded | JobStatus::Failed)
                && let (Some(start), Some(end)) = (job.started_time, job.finished_time)
            {
                durations.push(end - start);
            }
        }
        let finished = usage.succeeded + usage.failed;
        usage.failure_rate = (finished > 0).then(|| usage.failed as f64 / finished as f64);
        usage.mean_duration_ms =
            (!durations.is_empty()).then(|| durations.iter().sum::<i64>() as f64 / durations.len() as f64);
        usage.median_duration_ms = median(durations);
        Ok(usage)
    }
}
