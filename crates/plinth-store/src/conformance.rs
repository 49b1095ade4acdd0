//! The behaviour every [`MetadataStore`] backend must show. Backends call
//! [`run_all`] from their tests with a fresh, empty store.

use plinth_core::Error as DomainError;
use plinth_core::experiments::{LifecycleStage, Tag, ViewType};
use plinth_core::ids::{new_logged_model_id, new_run_id, now_ms};
use plinth_core::logged_models::{LoggedModel, LoggedModelStatus};
use plinth_core::registry::{NewModelVersion, Stage};
use plinth_core::runs::{DATASET_CONTEXT_TAG, Dataset, DatasetInput, Metric, Param, RunInfo, RunStatus, RunUpdate};

use plinth_core::query::{self, Filter, LoggedModelClause, LoggedModelSortKey, Query, SortKey};

use crate::{DatasetFilter, Error, ExperimentSearch, LoggedModelOrder, LoggedModelSearch, MetadataStore, RunSearch};

fn is_domain(e: &Error, f: fn(&DomainError) -> bool) -> bool {
    matches!(e, Error::Domain(d) if f(d))
}

fn not_found(e: &Error) -> bool {
    is_domain(e, |d| matches!(d, DomainError::NotFound(_)))
}
fn invalid(e: &Error) -> bool {
    is_domain(e, |d| matches!(d, DomainError::InvalidParameter(_)))
}
fn exists(e: &Error) -> bool {
    is_domain(e, |d| matches!(d, DomainError::AlreadyExists(_)))
}

/// A new running run's info in `experiment_id`, for backends' own tests too.
pub fn info(experiment_id: &str, name: &str, start_time: i64) -> RunInfo {
    let run_id = new_run_id();
    RunInfo {
        artifact_uri: format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"),
        run_id,
        run_name: name.into(),
        experiment_id: experiment_id.into(),
        user_id: "tester".into(),
        status: RunStatus::Running,
        start_time,
        end_time: None,
        lifecycle_stage: LifecycleStage::Active,
    }
}

/// A typed query from filter text, as the HTTP edge makes one.
fn q<C: Filter, K: SortKey>(filter: &str, order_by: &[&str], max_results: i64) -> Query<C, K> {
    let order_by: Vec<String> = order_by.iter().map(|s| s.to_string()).collect();
    Query::parse(filter, &order_by, max_results, 0).unwrap_or_else(|e| panic!("{filter} {order_by:?}: {e}"))
}

/// Filters no backend ever sees: the typed query cannot hold them.
fn refused<C: Filter>(filter: &str) -> bool {
    query::parse_filter::<C>(filter).is_err_and(|e| invalid(&Error::Domain(e)))
}

/// Runs every conformance check against `store`, which must be empty.
pub async fn run_all(store: &dyn MetadataStore) {
    experiments(store).await;
    runs_and_logging(store).await;
    tag_lists(store).await;
    run_search(store).await;
    registry(store).await;
    logged_model_search(store).await;
    jobs(store).await;
    deployments(store).await;
    users_and_tokens(store).await;
    roles_and_grants(store).await;
    audit_trail(store).await;
    workspaces(store).await;
}

/// Two teams use the same names without meeting: experiments by name, the
/// registry and its searches are their own workspace's.
async fn workspaces(store: &dyn MetadataStore) {
    use plinth_core::workspaces::{Workspace, WorkspaceUpdate};
    let invalid_state = |e: &Error| is_domain(e, |d| matches!(d, DomainError::InvalidState(_)));
    let new = |name: &str| Workspace {
        name: name.into(),
        description: Some(format!("team {name}")),
        default_artifact_root: None,
        creation_time: 5,
        last_update_time: 5,
    };
    let a = store.create_workspace(new("team-a")).await.expect("create a");
    assert_eq!(a, new("team-a"));
    assert!(store.create_workspace(new("team-a")).await.is_err_and(|e| exists(&e)));
    store.create_workspace(new("team-b")).await.expect("create b");
    let names: Vec<String> = store.list_workspaces().await.expect("list").into_iter().map(|w| w.name).collect();
    assert_eq!(names, ["default", "team-a", "team-b"]);
    assert!(store.get_workspace("team-z").await.is_err_and(|e| not_found(&e)));
    let update = WorkspaceUpdate { description: Some(String::new()), default_artifact_root: Some("s3://b/a".into()) };
    let a = store.update_workspace("team-a", update).await.expect("update");
    assert_eq!((a.description, a.default_artifact_root.as_deref()), (None, Some("s3://b/a")));
    let kept = store.update_workspace("team-a", WorkspaceUpdate::default()).await.expect("keep");
    assert_eq!(kept.default_artifact_root.as_deref(), Some("s3://b/a"));

    let (sa, sb) = (store.in_workspace("team-a"), store.in_workspace("team-b"));
    assert_eq!((sa.workspace(), sb.workspace()), ("team-a", "team-b"));
    let ea = sa.create_experiment("shared-name".into(), "a/{id}".into(), vec![]).await.expect("exp a");
    let eb = sb.create_experiment("shared-name".into(), "b/{id}".into(), vec![]).await.expect("same name in b");
    assert_ne!(ea, eb);
    assert!(sa.create_experiment("shared-name".into(), "a/{id}".into(), vec![]).await.is_err_and(|e| exists(&e)));
    assert_eq!(
        sa.get_experiment_by_name("shared-name").await.expect("by name").map(|e| e.experiment_id),
        Some(ea.clone())
    );
    assert_eq!(store.experiment_workspace(&eb).await.expect("ws of b"), "team-b");
    assert!(store.get_experiment_by_name("shared-name").await.expect("default").is_none());
    let search = ExperimentSearch { query: q("name = 'shared-name'", &[], 10), view: ViewType::ActiveOnly };
    let found = sb.search_experiments(search.clone()).await.expect("search b").items;
    assert_eq!(found.iter().map(|e| e.experiment_id.as_str()).collect::<Vec<_>>(), [eb.as_str()]);
    assert!(store.search_experiments(search).await.expect("search default").items.is_empty());

    for (s, source) in [(&sa, "a-src"), (&sb, "b-src")] {
        s.create_registered_model("recs".into(), None, vec![Tag { key: "team".into(), value: source.into() }])
            .await
            .expect("model");
        let v = s
            .create_model_version(NewModelVersion {
                name: "recs".into(),
                source: source.into(),
                storage_location: source.into(),
                ..Default::default()
            })
            .await
            .expect("version");
        assert_eq!(v.version, 1, "versions count per workspace");
        s.set_alias("recs", "champion", 1).await.expect("alias");
    }
    assert_eq!(sa.get_model_version_by_alias("recs", "champion").await.expect("a@champion").source, "a-src");
    assert_eq!(sb.get_model_version("recs", 1).await.expect("b/1").source, "b-src");
    assert!(store.get_registered_model("recs").await.is_err_and(|e| not_found(&e)));
    sa.rename_registered_model("recs", "recs-a".into()).await.expect("rename in a");
    assert_eq!(sb.get_registered_model("recs").await.expect("b untouched").tags[0].value, "b-src");
    let models = sb.search_registered_models(q("", &[], 100)).await.expect("models b").items;
    assert_eq!(models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["recs"]);
    let versions = sa.search_model_versions(q("", &[], 100)).await.expect("versions a").items;
    assert_eq!(
        versions.iter().map(|v| (v.name.as_str(), v.source.as_str())).collect::<Vec<_>>(),
        [("recs-a", "a-src")]
    );
    sb.delete_registered_model("recs").await.expect("delete in b");
    assert!(sa.get_registered_model("recs-a").await.is_ok());

    // Only an empty workspace goes, and never `default`.
    assert!(store.delete_workspace("default").await.is_err_and(|e| invalid_state(&e)));
    let refused = store.delete_workspace("team-a").await.expect_err("not empty");
    assert!(invalid_state(&refused) && refused.to_string().contains("experiments"), "{refused}");
    assert!(store.delete_workspace("team-z").await.is_err_and(|e| not_found(&e)));
    let empty = store.create_workspace(new("team-c")).await.expect("c");
    store.delete_workspace(&empty.name).await.expect("delete empty");
    assert!(store.get_workspace("team-c").await.is_err_and(|e| not_found(&e)));
}

async fn roles_and_grants(store: &dyn MetadataStore) {
    use plinth_core::access::{Grant, Permission as P, ResourceType as T, RoleChange as C, RoleChanged};
    let grant = |t, pattern: &str, p| Grant::new(t, pattern, p).expect("grant");
    let role = |changed: RoleChanged| match changed {
        RoleChanged::Role(r) => r,
        other => panic!("not a role: {other:?}"),
    };
    let perm = |changed: RoleChanged| match changed {
        RoleChanged::Permission(p) => p,
        other => panic!("not a permission: {other:?}"),
    };
    let ann = store.create_user("ann".into(), "$argon2id$a".into(), false).await.expect("ann");
    let ben = store.create_user("ben".into(), "$argon2id$b".into(), false).await.expect("ben");
    let ws = || "default".to_string();
    let create = |name: &str| C::Create { workspace: ws(), name: name.into(), description: Some("the team".into()) };

    let recs = role(store.change_roles(create("recs")).await.expect("create"));
    assert_eq!((recs.workspace.as_str(), recs.name.as_str(), recs.permissions.len()), ("default", "recs", 0));
    let taken = store.change_roles(create("recs")).await.expect_err("taken");
    assert!(exists(&taken) && taken.to_string() == "Role (name=recs, workspace=default) already exists.", "{taken}");
    let other = role(store.change_roles(create("studio")).await.expect("studio"));
    let renamed = C::Update { role_id: other.id, name: Some("recs".into()), description: None };
    assert!(store.change_roles(renamed).await.is_err_and(|e| exists(&e)));
    let updated = C::Update { role_id: other.id, name: Some("studio-ml".into()), description: None };
    let updated = role(store.change_roles(updated).await.expect("update"));
    assert_eq!((updated.name.as_str(), updated.description.as_deref()), ("studio-ml", Some("the team")));
    let missing = store.get_role(999).await.expect_err("missing");
    assert!(not_found(&missing) && missing.to_string() == "Role with id=999 not found", "{missing}");

    let add = |role_id, g| C::AddPermission { role_id, grant: g };
    let p1 = perm(store.change_roles(add(recs.id, grant(T::Experiment, "7", P::Edit))).await.expect("add"));
    perm(store.change_roles(add(recs.id, grant(T::RegisteredModel, "*", P::Read))).await.expect("add 2"));
    assert!(store.change_roles(add(recs.id, grant(T::Experiment, "7", P::Read))).await.is_err_and(|e| exists(&e)));
    assert!(store.change_roles(add(999, grant(T::Experiment, "7", P::Read))).await.is_err_and(|e| not_found(&e)));
    let p1 = perm(store.change_roles(C::UpdatePermission { id: p1.id, permission: P::Manage }).await.expect("update"));
    assert_eq!(store.get_role_permission(p1.id).await.expect("get"), p1);
    assert_eq!(store.get_role(recs.id).await.expect("role").permissions.len(), 2);

    // Grants count only for those who hold the role, in its workspace.
    assert!(store.list_grants(ann.id, "default").await.expect("none yet").is_empty());
    let a = store.change_roles(C::Assign { user_id: ann.id, role_id: recs.id }).await.expect("assign");
    assert!(matches!(a, RoleChanged::Assignment(x) if x.user_id == ann.id && x.role_id == recs.id));
    assert!(store.change_roles(C::Assign { user_id: ann.id, role_id: recs.id }).await.is_err_and(|e| exists(&e)));
    assert!(store.change_roles(C::Assign { user_id: 999, role_id: recs.id }).await.is_err_and(|e| not_found(&e)));
    let mut grants = store.list_grants(ann.id, "default").await.expect("grants");
    grants.sort_by(|x, y| x.pattern.cmp(&y.pattern));
    assert_eq!(grants, vec![grant(T::RegisteredModel, "*", P::Read), grant(T::Experiment, "7", P::Manage)]);
    assert!(store.list_grants(ann.id, "elsewhere").await.expect("other workspace").is_empty());
    assert_eq!(store.list_role_users(recs.id).await.expect("users").len(), 1);

    // Personal grants: a role of the user's own, made on first use; a second grant on the key is refused
    // unless it replaces.
    let personal = |g, replace| C::GrantPersonal { user_id: ben.id, workspace: ws(), grant: g, replace };
    store.change_roles(personal(grant(T::RegisteredModel, "recs", P::Edit), false)).await.expect("grant");
    let again = store.change_roles(personal(grant(T::RegisteredModel, "recs", P::Read), false)).await.expect_err("dup");
    assert!(exists(&again), "{again}");
    assert_eq!(
        again.to_string(),
        "Permission for user=ben on resource_type=registered_model, resource_id=recs already exists."
    );
    store.change_roles(personal(grant(T::RegisteredModel, "recs", P::Manage), true)).await.expect("replace");
    store.change_roles(personal(grant(T::Deployment, "live", P::Edit), false)).await.expect("deployment");
    let names: Vec<String> =
        store.list_roles(crate::RoleFilter::User(ben.id)).await.expect("ben's").into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec![format!("__user_{}__", ben.id)]);

    // A renamed model takes its grants along; a deleted one leaves none behind.
    let rename = C::RenameResource {
        workspace: ws(),
        resource_type: T::RegisteredModel,
        from: "recs".into(),
        to: "recs2".into(),
    };
    store.change_roles(rename).await.expect("rename");
    let ben_grants = store.list_grants(ben.id, "default").await.expect("ben");
    assert!(ben_grants.contains(&grant(T::RegisteredModel, "recs2", P::Manage)), "{ben_grants:?}");
    let forget = C::ForgetResource { workspace: ws(), resource_type: T::RegisteredModel, pattern: "recs2".into() };
    store.change_roles(forget).await.expect("forget");
    assert_eq!(store.list_grants(ben.id, "default").await.expect("ben"), vec![grant(T::Deployment, "live", P::Edit)]);
    let revoke = |pattern: &str| C::RevokePersonal {
        user_id: ben.id,
        workspace: ws(),
        resource_type: T::Deployment,
        pattern: pattern.into(),
    };
    store.change_roles(revoke("live")).await.expect("revoke");
    let gone = store.change_roles(revoke("live")).await.expect_err("gone");
    assert!(not_found(&gone) && gone.to_string().contains("not found"), "{gone}");

    let in_ws = store.list_roles(crate::RoleFilter::Workspace(ws())).await.expect("workspace's");
    assert_eq!(in_ws.len(), 3);
    assert!(store.list_roles(crate::RoleFilter::Workspace("elsewhere".into())).await.expect("none").is_empty());

    // Unassigning, deleting a role and deleting a user leave no grant behind.
    store.change_roles(C::Unassign { user_id: ann.id, role_id: recs.id }).await.expect("unassign");
    assert!(store.change_roles(C::Unassign { user_id: ann.id, role_id: recs.id }).await.is_err_and(|e| not_found(&e)));
    assert!(store.list_grants(ann.id, "default").await.expect("none").is_empty());
    store.change_roles(C::Assign { user_id: ann.id, role_id: recs.id }).await.expect("assign again");
    store.change_roles(C::RemovePermission { id: p1.id }).await.expect("remove");
    assert!(store.get_role_permission(p1.id).await.is_err_and(|e| not_found(&e)));
    store.change_roles(C::Delete { role_id: recs.id }).await.expect("delete");
    assert!(store.list_grants(ann.id, "default").await.expect("none").is_empty());
    assert!(store.list_role_users(recs.id).await.is_err_and(|e| not_found(&e)));
    store.delete_user("ben").await.expect("delete ben");
    assert_eq!(store.list_roles(crate::RoleFilter::All).await.expect("all").len(), 1, "ben's personal role went too");
    store.change_roles(C::Delete { role_id: other.id }).await.expect("delete studio");
    store.delete_user("ann").await.expect("delete ann");
}

async fn audit_trail(store: &dyn MetadataStore) {
    use plinth_core::audit::{Action, AuditQuery, AuditRecord};
    let record = |time: i64, actor: &str, action: Action, resource: &str| AuditRecord {
        seq: 0,
        time,
        actor: actor.into(),
        action,
        resource: resource.into(),
        before: None,
        after: None,
        request_id: None,
        workspace: "default".into(),
        detail: None,
    };
    let all = |max: i64| AuditQuery { max_results: max, ..Default::default() };
    assert!(store.search_audit(all(10)).await.expect("empty").items.is_empty());

    let mut moved = record(1_000, "alice", Action::AliasSet, "models/m/aliases/champion");
    (moved.before, moved.after, moved.request_id) = (Some("3".into()), Some("4".into()), Some("req-1".into()));
    moved.detail = Some("why it moved".into());
    store.append_audit(record(900, "alice", Action::ModelCreate, "models/m")).await.expect("append");
    store.append_audit(moved.clone()).await.expect("append");
    store.append_audit(record(1_100, "bob", Action::ModelCreate, "models/mm")).await.expect("append");
    store
        .append_audit(record(1_200, "bob (token t1)", Action::DeploymentCreate, "deployments/d"))
        .await
        .expect("append");

    // Newest first, numbered in the order appended, every field kept.
    let page = store.search_audit(all(10)).await.expect("all");
    let seqs: Vec<i64> = page.items.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![4, 3, 2, 1]);
    assert_eq!(page.next_offset, None);
    assert_eq!(page.items[2], AuditRecord { seq: 2, ..moved });

    // Pages run below the last seq.
    let first = store.search_audit(all(3)).await.expect("page 1");
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.next_offset, Some(2));
    let rest = store.search_audit(AuditQuery { before_seq: first.next_offset, ..all(3) }).await.expect("page 2");
    assert_eq!(rest.items.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
    assert_eq!(rest.next_offset, None);

    // A resource matches itself and what is below it, not a longer name.
    let of = |q: AuditQuery| async move {
        store.search_audit(q).await.expect("search").items.into_iter().map(|r| r.seq).collect::<Vec<_>>()
    };
    assert_eq!(of(AuditQuery { resource: Some("models/m".into()), ..all(10) }).await, vec![2, 1]);
    assert_eq!(of(AuditQuery { resource: Some("models/m/aliases".into()), ..all(10) }).await, vec![2]);
    assert_eq!(of(AuditQuery { resource: Some("models/m%".into()), ..all(10) }).await, Vec::<i64>::new());
    assert_eq!(of(AuditQuery { actor: Some("bob".into()), ..all(10) }).await, vec![4, 3]);
    assert_eq!(of(AuditQuery { actor: Some("bob (token t1)".into()), ..all(10) }).await, vec![4]);
    assert_eq!(of(AuditQuery { action: Some(Action::ModelCreate), ..all(10) }).await, vec![3, 1]);
    assert_eq!(of(AuditQuery { since: Some(1_000), until: Some(1_200), ..all(10) }).await, vec![3, 2]);

    // Activity per UTC day, actor and action.
    let day = plinth_core::usage::DAY_MS;
    store.append_audit(record(day + 5, "alice", Action::AliasSet, "models/m/aliases/champion")).await.expect("append");
    store.append_audit(record(day + 6, "alice", Action::AliasSet, "models/m/aliases/champion")).await.expect("append");
    let rows = store.audit_activity(1_000).await.expect("activity");
    let mut got: Vec<(i64, String, &str, i64)> =
        rows.iter().map(|r| (r.day, r.actor.clone(), r.action.as_str(), r.count)).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, "alice".to_string(), "alias.set", 1),
            (0, "bob".to_string(), "model.create", 1),
            (0, "bob (token t1)".to_string(), "deployment.create", 1),
            (1, "alice".to_string(), "alias.set", 2),
        ]
    );
}

async fn users_and_tokens(store: &dyn MetadataStore) {
    use plinth_core::auth::{ApiToken, TokenKind};
    let alice = store.create_user("alice".into(), "$argon2id$a".into(), false).await.expect("create alice");
    let bob = store.create_user("bob".into(), "$argon2id$b".into(), true).await.expect("create bob");
    assert_eq!((alice.id, bob.id), (1, 2), "ids are dense, from 1");
    assert!(bob.is_admin && !alice.is_admin);
    let again = store.create_user("alice".into(), "x".into(), false).await.expect_err("taken");
    assert!(exists(&again), "{again}");
    assert_eq!(again.to_string(), "User (username=alice) already exists.");
    assert_eq!(store.get_user("alice").await.expect("get"), alice);
    assert_eq!(store.get_user_by_id(2).await.expect("by id"), bob);
    let missing = store.get_user("carol").await.expect_err("missing");
    assert!(not_found(&missing) && missing.to_string() == "User with username=carol not found", "{missing}");
    let names: Vec<String> = store.list_users().await.expect("list").into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["alice", "bob"]);
    let changed = store.update_user("alice", Some("$argon2id$new".into()), None).await.expect("password");
    assert_eq!((changed.password_hash.as_str(), changed.is_admin), ("$argon2id$new", false));
    let changed = store.update_user("alice", None, Some(true)).await.expect("admin");
    assert_eq!((changed.password_hash.as_str(), changed.is_admin), ("$argon2id$new", true));
    assert!(store.update_user("carol", None, Some(true)).await.is_err_and(|e| not_found(&e)));

    let token = |id: &str, user_id, kind, created, expires| ApiToken {
        id: id.into(),
        user_id,
        name: format!("{id} name"),
        kind,
        secret_hash: format!("hash-{id}"),
        created_time: created,
        expires_time: expires,
        revoked_time: None,
        scope: None,
    };
    let t1 = token("t1", alice.id, TokenKind::Api, 10, None);
    store.create_token(t1.clone()).await.expect("token");
    // A serving key keeps its deployment.
    let key = ApiToken { scope: Some("recs-live".into()), ..token("k1", alice.id, TokenKind::Serving, 11, None) };
    store.create_token(key.clone()).await.expect("serving key");
    let (found, _) = store.find_token("hash-k1").await.expect("find").expect("the key");
    assert_eq!(found, key);
    store.create_token(token("t2", alice.id, TokenKind::Api, 20, Some(1_000))).await.expect("token 2");
    store.create_token(token("s1", alice.id, TokenKind::Session, 30, Some(40))).await.expect("session");
    assert!(store.create_token(token("t9", 99, TokenKind::Api, 1, None)).await.is_err_and(|e| not_found(&e)));
    let (found, owner) = store.find_token("hash-t1").await.expect("find").expect("found");
    assert_eq!((found, owner.username.as_str()), (t1.clone(), "alice"));
    assert!(store.find_token("hash-nope").await.expect("find").is_none());
    let ids: Vec<String> = store.list_tokens(alice.id).await.expect("tokens").into_iter().map(|t| t.id).collect();
    assert_eq!(ids, ["s1", "t2", "k1", "t1"], "newest first");
    // A new session clears the sessions that have ended.
    store.create_token(token("s2", alice.id, TokenKind::Session, 50, Some(90))).await.expect("session 2");
    assert!(store.find_token("hash-s1").await.expect("find").is_none());
    let revoked = store.revoke_token("t1", 60).await.expect("revoke");
    assert_eq!(revoked.revoked_time, Some(60));
    assert_eq!(
        store.revoke_token("t1", 70).await.expect("again").revoked_time,
        Some(60),
        "the first revocation stands"
    );
    assert!(store.revoke_token("nope", 70).await.is_err_and(|e| not_found(&e)));
    store.delete_user("alice").await.expect("delete");
    assert!(store.find_token("hash-t2").await.expect("find").is_none(), "a user's tokens go with them");
    assert!(store.delete_user("alice").await.is_err_and(|e| not_found(&e)));
    store.delete_user("bob").await.expect("delete bob");
}

async fn deployments(store: &dyn MetadataStore) {
    use plinth_core::deployments::{Deployment, ModelRef, TrafficMode, Variant, VariantCounters};
    let variant = |name: &str, model: &str, weight| Variant {
        name: name.into(),
        model: ModelRef::parse(model).expect("model ref"),
        weight,
    };
    let d = Deployment {
        name: "recs".into(),
        salt: "salt-1".into(),
        variants: vec![variant("a", "recs@champion", 90), variant("b", "recs/2", 10)],
        shadow: Some(variant("s", "recs@challenger", 0)),
        mode: TrafficMode::Interleave,
        metrics: Vec::new(),
        policy: None,
        created_time: 1,
        updated_time: 1,
        workspace: "default".into(),
    };
    assert_eq!(store.create_deployment(d.clone()).await.expect("create"), d);
    assert!(store.create_deployment(d.clone()).await.is_err_and(|e| exists(&e)));
    assert_eq!(store.get_deployment("recs").await.expect("get"), d);
    let mut changed = d.clone();
    changed.variants[0].weight = 50;
    changed.shadow = None;
    changed.updated_time = 2;
    changed.salt = "ignored".into();
    changed.mode = TrafficMode::Split;
    let updated = store.update_deployment(changed).await.expect("update");
    assert_eq!((updated.variants[0].weight, updated.shadow.clone(), updated.salt.as_str()), (50, None, "salt-1"));
    assert_eq!(updated.mode, TrafficMode::Split);
    assert_eq!(store.list_deployments().await.expect("list").len(), 1);

    // Named metrics and a policy with its progress are kept whole.
    use plinth_core::policy::{Aggregate, Guardrail, MetricDef, Policy, PolicyState, PolicyStatus};
    let mut with_policy = updated.clone();
    with_policy.metrics = vec![MetricDef {
        name: "minutes".into(),
        event: "play".into(),
        aggregate: Aggregate::Sum,
        window_ms: 3_600_000,
        cuped: true,
    }];
    with_policy.policy = Some(Policy {
        metric: "minutes".into(),
        control: "a".into(),
        challenger: "b".into(),
        guardrails: vec![
            Guardrail::ErrorRate { max: 0.05 },
            Guardrail::Metric { metric: "minutes".into(), max_drop: 0.1 },
        ],
        min_units: 100,
        min_duration_ms: 60_000,
        min_exposures: 50,
        ramp: vec![1, 10, 50],
        promote: Some("champion".into()),
        alpha: 0.05,
        state: PolicyState { status: PolicyStatus::Running, stage: 1, stage_started_ms: 5, reason: Some("r".into()) },
    });
    with_policy.updated_time = 3;
    // A compare-and-set: only over the revision it was read at.
    assert_eq!(store.update_deployment_if(with_policy.clone(), 1).await.expect("stale"), None);
    assert_eq!(store.get_deployment("recs").await.expect("get").updated_time, 2, "nothing written");
    assert_eq!(store.update_deployment_if(with_policy.clone(), 2).await.expect("cas"), Some(with_policy.clone()));
    let unknown = Deployment { name: "nope".into(), ..with_policy.clone() };
    assert!(store.update_deployment_if(unknown, 3).await.is_err_and(|e| not_found(&e)));
    assert_eq!(store.list_deployments().await.expect("list"), vec![with_policy.clone()]);
    with_policy.policy = None;
    with_policy.metrics.clear();
    with_policy.updated_time = 4;
    assert_eq!(store.update_deployment(with_policy.clone()).await.expect("update"), with_policy);

    // A lease is one holder's until it ends; its holder renews it.
    assert!(store.acquire_lease("evaluator", "p1", 1_000, 500).await.expect("take"));
    assert!(!store.acquire_lease("evaluator", "p2", 1_400, 500).await.expect("held"));
    assert!(store.acquire_lease("evaluator", "p1", 1_400, 500).await.expect("renew"));
    assert!(!store.acquire_lease("evaluator", "p2", 1_800, 500).await.expect("renewed"));
    assert!(store.acquire_lease("evaluator", "p2", 1_900, 500).await.expect("ended: taken over"));
    assert!(!store.acquire_lease("evaluator", "p1", 2_000, 500).await.expect("p2's now"));
    assert!(store.acquire_lease("other", "p1", 2_000, 500).await.expect("another lease"));
    assert!(store.get_deployment("nope").await.is_err_and(|e| not_found(&e)));

    // Each process's counters replace its own earlier ones; readers get every fresh process's.
    let counted = |replica: &str, requests: i64, at: i64| VariantCounters {
        deployment: "recs".into(),
        variant: "a".into(),
        replica: replica.into(),
        requests,
        errors: 1,
        fallbacks: 2,
        latency_us_total: requests * 10,
        updated_time: at,
    };
    let now = 10_000_000;
    store.publish_counters(vec![counted("r1", 5, now)], now).await.expect("publish");
    store
        .publish_counters(vec![counted("r1", 7, now + 1), counted("r2", 3, now - 5_000)], now + 1)
        .await
        .expect("again");
    let fresh = store.deployment_counters("recs", now - 1_000).await.expect("counters");
    assert_eq!(fresh, vec![counted("r1", 7, now + 1)], "r2 went quiet before `since`");
    assert_eq!(store.deployment_counters("recs", 0).await.expect("counters").len(), 2);
    // An hour later, r1 alone still publishing: r2's row is removed.
    let later = now + 3_600_000;
    store.publish_counters(vec![counted("r1", 9, later)], later).await.expect("publish later");
    assert_eq!(store.deployment_counters("recs", 0).await.expect("counters"), vec![counted("r1", 9, later)]);
    assert!(store.deployment_counters("other", 0).await.expect("none").is_empty());

    store.delete_deployment("recs").await.expect("delete");
    assert!(store.deployment_counters("recs", 0).await.expect("gone with it").is_empty());
    assert!(store.delete_deployment("recs").await.is_err_and(|e| not_found(&e)));
    assert!(store.list_deployments().await.expect("list").is_empty());
}

fn logged_model(experiment_id: &str, name: &str, run_id: &str, created: i64) -> LoggedModel {
    let model_id = new_logged_model_id();
    LoggedModel {
        artifact_location: format!("mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts"),
        model_id,
        experiment_id: experiment_id.into(),
        name: name.into(),
        creation_timestamp_ms: created,
        last_updated_timestamp_ms: created,
        model_type: None,
        source_run_id: Some(run_id.into()),
        status: LoggedModelStatus::Pending,
        status_message: None,
        deleted: false,
        tags: vec![Tag::new("team", if name == "b" { "search" } else { "recs" })],
        params: vec![Param::new("lr", format!("0.{created}"))],
        metrics: vec![],
    }
}

async fn logged_model_search(store: &dyn MetadataStore) {
    let exp = store.create_experiment("logged-models".into(), "loc".into(), vec![]).await.expect("exp");
    let run = store.create_run(info(&exp, "train", now_ms()), vec![]).await.expect("run");
    let mut ids = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let m = store.create_logged_model(logged_model(&exp, name, &run.info.run_id, 1000 + i as i64)).await;
        ids.push(m.expect("create").model_id);
    }
    // acc on dataset "eval": a=0.5 (then 0.9 later), b=0.7; c has none.
    let metric = |model: usize, value: f64, ts: i64, dataset: &str| Metric {
        model_id: Some(ids[model].clone()),
        dataset_name: Some(dataset.into()),
        dataset_digest: Some(format!("{dataset}-digest")),
        ..Metric::new("acc", value, ts, 0)
    };
    let metrics = vec![metric(0, 0.5, 1, "eval"), metric(0, 0.9, 2, "eval"), metric(1, 0.7, 1, "test")];
    store.log_batch(&run.info.run_id, metrics, vec![], vec![]).await.expect("metrics");

    let search = |filter: &str, order_by: Vec<LoggedModelOrder>, datasets: Vec<DatasetFilter>| LoggedModelSearch {
        experiment_ids: vec![exp.clone()],
        filter: query::parse_filter(filter).expect("filter"),
        datasets,
        order_by,
        max_results: 10,
        offset: 0,
    };
    let names = |page: &crate::Page<LoggedModel>| page.items.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    // No experiment asked for is none searched (as MLflow's store), not every one.
    let nowhere = LoggedModelSearch { experiment_ids: vec![], ..search("", vec![], vec![]) };
    assert!(store.search_logged_models(nowhere).await.expect("no experiments").items.is_empty());
    let by = |field: &str, ascending: bool| LoggedModelOrder {
        key: LoggedModelSortKey::parse(field).expect("sort key"),
        ascending,
        dataset: None,
    };
    let found = |s: LoggedModelSearch| async move { names(&store.search_logged_models(s).await.expect("search")) };

    assert_eq!(found(search("", vec![], vec![])).await, ["c", "b", "a"], "newest first by default");
    assert_eq!(found(search("name = 'b'", vec![], vec![])).await, ["b"]);
    assert_eq!(found(search("name IN ('a', 'c')", vec![by("name", true)], vec![])).await, ["a", "c"]);
    let run_filter = format!("source_run_id = '{}' AND name != 'a'", run.info.run_id);
    assert_eq!(found(search(&run_filter, vec![], vec![])).await, ["c", "b"]);
    assert_eq!(found(search("creation_time >= 1001", vec![by("creation_time", true)], vec![])).await, ["b", "c"]);
    assert_eq!(found(search("tags.team = 'recs'", vec![], vec![])).await, ["c", "a"]);
    assert_eq!(found(search("params.lr LIKE '0.100%'", vec![], vec![])).await, ["c", "b", "a"]);
    assert_eq!(found(search("metrics.acc > 0.8", vec![], vec![])).await, ["a"], "any logged value counts");
    assert_eq!(found(search("metrics.acc > 0.6", vec![], vec![])).await, ["b", "a"]);
    let eval = DatasetFilter { name: "eval".into(), digest: None };
    assert_eq!(found(search("metrics.acc > 0.6", vec![], vec![eval.clone()])).await, ["a"]);
    assert_eq!(found(search("", vec![], vec![eval.clone()])).await, ["a"]);
    let wrong_digest = DatasetFilter { name: "eval".into(), digest: Some("other".into()) };
    assert!(found(search("", vec![], vec![wrong_digest])).await.is_empty());

    // Sorting by a metric uses the latest value; models without it come last.
    assert_eq!(found(search("", vec![by("metrics.acc", false)], vec![])).await, ["a", "b", "c"]);
    assert_eq!(found(search("", vec![by("metrics.acc", true)], vec![])).await, ["b", "a", "c"]);
    let on_test = LoggedModelOrder {
        dataset: Some(DatasetFilter { name: "test".into(), digest: None }),
        ..by("metrics.acc", false)
    };
    assert_eq!(found(search("", vec![on_test], vec![])).await, ["b", "c", "a"]);

    let mut paged = search("", vec![by("name", true)], vec![]);
    paged.max_results = 2;
    let first = store.search_logged_models(paged.clone()).await.expect("page 1");
    assert_eq!((names(&first), first.next_offset), (vec!["a".to_string(), "b".to_string()], Some(2)));
    paged.offset = 2;
    let second = store.search_logged_models(paged).await.expect("page 2");
    assert_eq!((names(&second), second.next_offset), (vec!["c".to_string()], None));

    for bad in ["name > 'a'", "metrics.acc = 'x'", "params.lr IN ('a')", "bogus = 'x'", "datasets.name = 'x'"] {
        assert!(refused::<LoggedModelClause>(bad), "{bad}");
    }
    for bad in ["params.lr", "nope"] {
        assert!(LoggedModelSortKey::parse(bad).is_err_and(|e| invalid(&Error::Domain(e))), "{bad}");
    }
}

async fn jobs(store: &dyn MetadataStore) {
    use plinth_core::jobs::{Job, JobKind, JobStatus, LeaseState};
    let t0 = now_ms();
    let mut job = Job::queued("job-1".into(), JobKind::TrainRecommender, serde_json::json!({"algo": "als"}), t0);
    store.create_job(job.clone()).await.expect("create job");
    assert_eq!(store.get_job("job-1").await.expect("get"), job);
    assert_eq!(store.list_jobs(Some(JobStatus::Queued), 10).await.expect("list").len(), 1);
    job.status = JobStatus::Succeeded;
    job.result = Some(serde_json::json!({"run_id": "r"}));
    job.attempts = 1;
    store.update_job(job.clone()).await.expect("update");
    assert_eq!(store.get_job("job-1").await.expect("get"), job);
    assert!(store.list_jobs(Some(JobStatus::Queued), 10).await.expect("list").is_empty());
    assert!(store.get_job("nope").await.is_err_and(|e| not_found(&e)));

    // Claims: oldest first, one claimer per job, counted attempts, leases.
    let spec = serde_json::json!({});
    for (i, id) in ["job-a", "job-b"].into_iter().enumerate() {
        store
            .create_job(Job::queued(id.into(), JobKind::TrainTabular, spec.clone(), t0 + 1 + i as i64))
            .await
            .expect("job");
    }
    let a = store.claim_job("w1", t0 + 10, 1_000, 3).await.expect("claim").expect("a job");
    assert_eq!((a.job_id.as_str(), a.status, a.attempts), ("job-a", JobStatus::Running, 1));
    assert_eq!((a.worker.as_deref(), a.lease_until), (Some("w1"), Some(t0 + 1_010)));
    let b = store.claim_job("w2", t0 + 20, 1_000, 3).await.expect("claim").expect("b job");
    assert_eq!(b.job_id, "job-b", "a held job is not claimed twice");
    assert!(store.claim_job("w3", t0 + 30, 1_000, 3).await.expect("claim").is_none());
    assert_eq!(store.renew_job_lease("job-a", "w1", t0 + 5_000).await.expect("renew"), LeaseState::Held);
    assert_eq!(store.renew_job_lease("job-a", "w2", t0 + 5_000).await.expect("renew"), LeaseState::Lost);
    // w2 stops renewing: past its lease, another worker takes job-b over.
    let taken = store.claim_job("w3", t0 + 2_000, 1_000, 3).await.expect("claim").expect("expired");
    assert_eq!((taken.job_id.as_str(), taken.worker.as_deref(), taken.attempts), ("job-b", Some("w3"), 2));
    assert_eq!(store.renew_job_lease("job-b", "w2", t0 + 9_000).await.expect("renew"), LeaseState::Lost);
    let mut late = b.clone();
    late.status = JobStatus::Succeeded;
    assert!(!store.finish_job(late, "w2").await.expect("finish"), "a lost lease writes nothing");
    // Cancel: a running job is asked through its row; a queued one ends at once; an ended one refuses.
    let asked = store.cancel_job("job-a", t0 + 3_000).await.expect("cancel");
    assert!(asked.cancel_requested && asked.status == JobStatus::Running);
    assert_eq!(store.renew_job_lease("job-a", "w1", t0 + 6_000).await.expect("renew"), LeaseState::CancelRequested);
    let mut done = asked.clone();
    done.status = JobStatus::Cancelled;
    done.finished_time = Some(t0 + 3_100);
    assert!(store.finish_job(done, "w1").await.expect("finish"));
    let ended = store.get_job("job-a").await.expect("get");
    assert_eq!((ended.status, ended.worker), (JobStatus::Cancelled, None));
    assert!(store.cancel_job("job-a", t0 + 4_000).await.is_err(), "ended");
    store.create_job(Job::queued("job-c".into(), JobKind::TrainTabular, spec.clone(), t0 + 5)).await.expect("job");
    assert_eq!(store.cancel_job("job-c", t0 + 4_000).await.expect("cancel").status, JobStatus::Cancelled);
    // Released on shutdown: queued again, the attempt not counted.
    store.release_job("job-b", "w3").await.expect("release");
    let released = store.get_job("job-b").await.expect("get");
    assert_eq!((released.status, released.attempts, released.worker), (JobStatus::Queued, 1, None));
    // Interrupted too often: failed with the reason, not started again.
    for (n, worker) in ["w4", "w5"].into_iter().enumerate() {
        let t = t0 + 10_000 * (n as i64 + 1);
        let j = store.claim_job(worker, t, 1_000, 3).await.expect("claim").expect("job-b again");
        assert_eq!(j.attempts, n as i64 + 2);
    }
    assert!(store.claim_job("w6", t0 + 40_000, 1_000, 3).await.expect("claim").is_none());
    let failed = store.get_job("job-b").await.expect("get");
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(failed.error.as_deref().is_some_and(|e| e.contains("interrupted 3 times")), "{failed:?}");
}

async fn experiments(store: &dyn MetadataStore) {
    store.ensure_default_experiment("mlflow-artifacts:/0".into()).await.expect("default");
    store.ensure_default_experiment("mlflow-artifacts:/0".into()).await.expect("idempotent");
    let default = store.get_experiment("0").await.expect("default exists");
    assert_eq!(default.name, "Default");

    let id = store
        .create_experiment("exp-a".into(), "mlflow-artifacts:/{id}".into(), vec![Tag::new("team", "recs")])
        .await
        .expect("create");
    let e = store.get_experiment(&id).await.expect("get");
    assert_eq!(e.artifact_location, format!("mlflow-artifacts:/{id}"));
    assert_eq!(e.tags, vec![Tag::new("team", "recs")]);
    let dup = store.create_experiment("exp-a".into(), "x".into(), vec![]).await;
    assert!(dup.as_ref().is_err_and(exists), "{dup:?}");
    assert!(store.get_experiment("999").await.is_err_and(|e| not_found(&e)));
    assert!(store.get_experiment("abc").await.is_err_and(|e| not_found(&e)));
    assert!(store.get_experiment_by_name("nope").await.expect("by name").is_none());

    store.rename_experiment(&id, "exp-renamed".into()).await.expect("rename");
    assert_eq!(
        store.get_experiment_by_name("exp-renamed").await.expect("ok").map(|e| e.experiment_id),
        Some(id.clone())
    );
    store.set_experiment_tag(&id, Tag::new("k", "v")).await.expect("tag");
    store.delete_experiment_tag(&id, "k").await.expect("untag");
    assert!(store.delete_experiment_tag(&id, "k").await.is_err_and(|e| not_found(&e)));

    let other = store.create_experiment("exp-b".into(), "loc".into(), vec![]).await.expect("create b");
    store.set_experiment_lifecycle(&other, LifecycleStage::Deleted).await.expect("delete");
    let active = store
        .search_experiments(ExperimentSearch { view: ViewType::ActiveOnly, query: q("", &[], 100) })
        .await
        .expect("search");
    assert!(active.items.iter().all(|e| e.experiment_id != other));
    let deleted = store
        .search_experiments(ExperimentSearch { view: ViewType::DeletedOnly, query: q("", &[], 100) })
        .await
        .expect("search");
    assert_eq!(deleted.items.len(), 1);
    let r = store.create_run(info(&other, "r", now_ms()), vec![]).await;
    assert!(r.is_err_and(|e| invalid(&e)), "runs need an active experiment");
    store.set_experiment_lifecycle(&other, LifecycleStage::Active).await.expect("restore");
    assert!(store.set_experiment_lifecycle("0", LifecycleStage::Deleted).await.is_err_and(|e| invalid(&e)));

    let named = store
        .search_experiments(ExperimentSearch { view: ViewType::All, query: q("name LIKE 'exp-%'", &["name ASC"], 1) })
        .await
        .expect("search");
    assert_eq!(named.items.len(), 1);
    assert_eq!(named.items[0].name, "exp-b");
    assert_eq!(named.next_offset, Some(1));
}

/// Appends to a tag's JSON list are atomic: concurrent ones all land.
async fn tag_lists(store: &dyn MetadataStore) {
    let exp = store.create_experiment("tag-lists".into(), "loc".into(), vec![]).await.expect("exp");
    let run = store.create_run(info(&exp, "lists", 1000), vec![]).await.expect("run");
    let id = run.info.run_id.clone();
    let key = "mlflow.log-model.history";
    store.append_to_run_tag_list(&id, key, serde_json::json!({"n": 0})).await.expect("first");
    let appends: Vec<_> =
        (1..=8).map(|n| store.append_to_run_tag_list(&id, key, serde_json::json!({"n": n}))).collect();
    for r in futures::future::join_all(appends).await {
        r.expect("append");
    }
    let tag = store.get_run(&id).await.expect("get").data.tags.into_iter().find(|t| t.key == key).expect("tag");
    let list: Vec<serde_json::Value> = serde_json::from_str(&tag.value).expect("a JSON list");
    let mut ns: Vec<i64> = list.iter().filter_map(|v| v["n"].as_i64()).collect();
    ns.sort_unstable();
    assert_eq!(ns, (0..=8).collect::<Vec<_>>(), "no append lost");
    let huge = serde_json::Value::String("x".repeat(10_000));
    assert!(
        store.append_to_run_tag_list(&id, key, huge).await.is_err_and(|e| invalid(&e)),
        "a tag value over the limit"
    );
    let empty = serde_json::json!({});
    assert!(store.append_to_run_tag_list("no-such-run", key, empty).await.is_err_and(|e| e.is_not_found()));
}

async fn runs_and_logging(store: &dyn MetadataStore) {
    let exp = store.create_experiment("runs".into(), "loc".into(), vec![]).await.expect("exp");
    let run = store
        .create_run(info(&exp, "first", 1000), vec![Tag::new("mlflow.runName", "first")])
        .await
        .expect("create run");
    let id = run.info.run_id.clone();
    store
        .log_batch(
            &id,
            vec![Metric::new("loss", 1.0, 1, 0), Metric::new("loss", 0.5, 2, 1), Metric::new("nan", f64::NAN, 1, 0)],
            vec![Param::new("lr", "0.1")],
            vec![Tag::new("t", "1")],
        )
        .await
        .expect("log");
    // Params are immutable; the same value again is fine.
    store.log_batch(&id, vec![], vec![Param::new("lr", "0.1")], vec![]).await.expect("same param");
    let changed = store.log_batch(&id, vec![Metric::new("x", 1.0, 1, 0)], vec![Param::new("lr", "0.2")], vec![]).await;
    assert!(changed.is_err_and(|e| invalid(&e)));
    let got = store.get_run(&id).await.expect("get");
    assert!(got.data.metrics.iter().all(|m| m.key != "x"), "a failed batch logs nothing");
    let loss = got.data.metrics.iter().find(|m| m.key == "loss").expect("loss");
    assert_eq!((loss.value, loss.step), (0.5, 1));
    assert!(got.data.metrics.iter().find(|m| m.key == "nan").is_some_and(|m| m.value.is_nan()));
    // An older step does not replace the latest value.
    store.log_batch(&id, vec![Metric::new("loss", 9.0, 3, 0)], vec![], vec![]).await.expect("log old step");
    let got = store.get_run(&id).await.expect("get");
    assert_eq!(got.data.metrics.iter().find(|m| m.key == "loss").map(|m| m.value), Some(0.5));
    let hist = store.get_metric_history(&id, "loss", 2, 0).await.expect("history");
    assert_eq!(hist.items.len(), 2);
    assert_eq!(hist.next_offset, Some(2));
    let rest = store.get_metric_history(&id, "loss", 2, 2).await.expect("history");
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_offset, None);

    let updated = store
        .update_run(
            &id,
            RunUpdate { status: Some(RunStatus::Finished), end_time: None, run_name: Some("renamed".into()) },
        )
        .await
        .expect("update");
    assert_eq!(updated.status, RunStatus::Finished);
    assert!(updated.end_time.is_some());
    let got = store.get_run(&id).await.expect("get");
    assert_eq!(got.info.run_name, "renamed");
    assert!(got.data.tags.iter().any(|t| t.key == "mlflow.runName" && t.value == "renamed"));

    store.delete_run_tag(&id, "t").await.expect("delete tag");
    assert!(store.delete_run_tag(&id, "t").await.is_err_and(|e| not_found(&e)));
    store.set_run_lifecycle(&id, LifecycleStage::Deleted).await.expect("delete run");
    let logged = store.log_batch(&id, vec![Metric::new("m", 1.0, 1, 0)], vec![], vec![]).await;
    assert!(logged.is_err_and(|e| invalid(&e)), "deleted runs refuse writes");
    store.set_run_lifecycle(&id, LifecycleStage::Active).await.expect("restore run");
    assert!(store.get_run("0123456789abcdef0123456789abcdef").await.is_err_and(|e| not_found(&e)));
}

async fn run_search(store: &dyn MetadataStore) {
    let exp = store.create_experiment("search".into(), "loc".into(), vec![]).await.expect("exp");
    let mut ids = Vec::new();
    for i in 0..10 {
        let run = store.create_run(info(&exp, &format!("run-{i}"), 1000 + i), vec![]).await.expect("run");
        let mut metrics = vec![Metric::new("acc", i as f64 / 10.0, 1, 0)];
        if i == 3 {
            metrics.clear();
        }
        let algo = if i % 2 == 0 { "als" } else { "bpr" };
        store
            .log_batch(&run.info.run_id, metrics, vec![Param::new("algo", algo)], vec![Tag::new("idx", i.to_string())])
            .await
            .expect("log");
        ids.push(run.info.run_id);
    }
    let search = |filter: &str, order: &[&str], max: i64| RunSearch {
        experiment_ids: vec![exp.clone()],
        view: ViewType::ActiveOnly,
        query: q(filter, order, max),
    };
    let page = store.search_runs(search("", &[], 100)).await.expect("all");
    assert_eq!(page.items.len(), 10);
    assert_eq!(page.items[0].info.run_name, "run-9", "newest first by default");

    let page = store
        .search_runs(search("metrics.acc > 0.45 and params.algo = 'als'", &["metrics.acc DESC"], 100))
        .await
        .expect("filter");
    let names: Vec<_> = page.items.iter().map(|r| r.info.run_name.clone()).collect();
    assert_eq!(names, ["run-8", "run-6"]);

    let page = store.search_runs(search("", &["metrics.acc ASC"], 100)).await.expect("order");
    assert_eq!(page.items.last().map(|r| r.info.run_name.as_str()), Some("run-3"), "missing metric sorts last");
    assert_eq!(page.items[0].info.run_name, "run-0");

    let page =
        store.search_runs(search("tags.idx IN ('1', '2')", &["attributes.start_time ASC"], 100)).await.expect("in");
    assert_eq!(page.items.len(), 2);
    let page = store.search_runs(search("attributes.run_name LIKE 'run-1%'", &[], 100)).await.expect("like");
    assert_eq!(page.items.len(), 1);
    let page = store.search_runs(search("attributes.run_name ILIKE 'RUN-1%'", &[], 100)).await.expect("ilike");
    assert_eq!(page.items.len(), 1);
    let page =
        store.search_runs(search("attributes.run_name LIKE 'RUN-1%'", &[], 100)).await.expect("like is case-sensitive");
    assert_eq!(page.items.len(), 0);
    let page = store.search_runs(search(&format!("attributes.run_id = '{}'", ids[4]), &[], 100)).await.expect("by id");
    assert_eq!(page.items.len(), 1);
    let page = store.search_runs(search("params.missing IS NULL", &[], 100)).await.expect("is null");
    assert_eq!(page.items.len(), 10);

    // Paging walks every run exactly once, in order, also across the runs
    // that lack the metric being sorted on.
    for order in [&["params.algo ASC"][..], &["metrics.acc DESC"][..], &["metrics.acc ASC", "tags.idx DESC"][..]] {
        let full: Vec<String> = store
            .search_runs(search("", order, 100))
            .await
            .expect("all")
            .items
            .into_iter()
            .map(|r| r.info.run_id)
            .collect();
        let mut seen = Vec::new();
        let mut s = search("", order, 3);
        loop {
            let page = store.search_runs(s.clone()).await.expect("page");
            seen.extend(page.items.into_iter().map(|r| r.info.run_id));
            match page.next_offset {
                Some(o) => s.query.offset = o,
                None => break,
            }
        }
        assert_eq!(seen, full, "{order:?}");
        let mut sorted = seen.clone();
        sorted.sort();
        let mut all = ids.clone();
        all.sort();
        assert_eq!(sorted, all);
    }
    let page = store.search_runs(search("", &["metrics.acc DESC"], 100)).await.expect("desc");
    let names: Vec<_> = page.items.iter().map(|r| r.info.run_name.as_str()).collect();
    assert_eq!(names.first(), Some(&"run-9"));
    assert_eq!(names.last(), Some(&"run-3"), "missing metric sorts last in DESC too");

    assert!(refused::<query::RunClause>("metrics.acc = 'x'"));
    assert!(refused::<query::RunClause>("bogus"));

    // Datasets: by name, digest and the context the run used them in.
    let dataset = |name: &str, context: &str| DatasetInput {
        dataset: Dataset {
            name: name.into(),
            digest: format!("{name}-digest"),
            source_type: "local".into(),
            source: "file:///data".into(),
            schema: None,
            profile: None,
        },
        tags: vec![Tag::new(DATASET_CONTEXT_TAG, context)],
    };
    store.log_inputs(&ids[0], vec![dataset("movies", "training")], vec![]).await.expect("inputs");
    store
        .log_inputs(&ids[1], vec![dataset("movies", "eval"), dataset("ratings", "eval")], vec![])
        .await
        .expect("inputs");
    for (filter, expected) in [
        ("datasets.name = 'movies'", 2),
        ("datasets.digest = 'ratings-digest'", 1),
        ("datasets.context = 'eval'", 1),
        ("datasets.context IN ('eval', 'training')", 2),
        ("datasets.context LIKE 'train%'", 1),
        ("datasets.context = 'eval%'", 0),
        ("datasets.context != 'training'", 1),
    ] {
        let page = store.search_runs(search(filter, &[], 100)).await.expect("datasets");
        assert_eq!(page.items.len(), expected, "{filter}");
    }
}

async fn registry(store: &dyn MetadataStore) {
    let exp = store.create_experiment("registry".into(), "loc".into(), vec![]).await.expect("exp");
    let run = store.create_run(info(&exp, "train", now_ms()), vec![]).await.expect("run");
    let model_id = new_logged_model_id();
    let lm = store
        .create_logged_model(LoggedModel {
            model_id: model_id.clone(),
            experiment_id: exp.clone(),
            name: "model".into(),
            artifact_location: format!("mlflow-artifacts:/{exp}/models/{model_id}/artifacts"),
            creation_timestamp_ms: now_ms(),
            last_updated_timestamp_ms: now_ms(),
            model_type: None,
            source_run_id: Some(run.info.run_id.clone()),
            status: LoggedModelStatus::Pending,
            status_message: None,
            deleted: false,
            tags: vec![Tag::new("a", "b")],
            params: vec![Param::new("p", "1")],
            metrics: vec![],
        })
        .await
        .expect("logged model");
    assert_eq!(lm.tags.len(), 1);
    let lm = store.finalize_logged_model(&model_id, LoggedModelStatus::Ready).await.expect("finalize");
    assert_eq!(lm.status, LoggedModelStatus::Ready);

    store.create_registered_model("recs".into(), Some("d".into()), vec![]).await.expect("create");
    assert!(store.create_registered_model("recs".into(), None, vec![]).await.is_err_and(|e| exists(&e)));
    let new = |source: &str| NewModelVersion {
        name: "recs".into(),
        source: source.into(),
        run_id: Some(run.info.run_id.clone()),
        storage_location: source.into(),
        ..Default::default()
    };
    let v1 = store.create_model_version(new("s1")).await.expect("v1");
    let v2 = store.create_model_version(new("s2")).await.expect("v2");
    assert_eq!((v1.version, v2.version), (1, 2));
    store.set_alias("recs", "champion", 1).await.expect("alias");
    assert_eq!(store.get_model_version_by_alias("recs", "champion").await.expect("by alias").version, 1);
    store.set_alias("recs", "champion", 2).await.expect("move alias");
    let mv = store.get_model_version_by_alias("recs", "champion").await.expect("by alias");
    assert_eq!((mv.version, mv.aliases.clone()), (2, vec!["champion".to_string()]));
    assert!(store.set_alias("recs", "x", 9).await.is_err_and(|e| not_found(&e)));
    assert!(store.get_model_version_by_alias("recs", "nope").await.is_err_and(|e| not_found(&e)));

    let moved = store.transition_stage("recs", 1, Stage::Production, true).await.expect("stage");
    assert_eq!(moved.current_stage, Stage::Production);
    let latest = store.get_latest_versions("recs", vec![Stage::Production]).await.expect("latest");
    assert_eq!(latest.iter().map(|v| v.version).collect::<Vec<_>>(), [1]);

    store.set_model_version_tag("recs", 2, Tag::new("k", "v")).await.expect("tag");
    let found = store.search_model_versions(q("name = 'recs' and tags.k = 'v'", &[], 10)).await.expect("search");
    assert_eq!(found.items.len(), 1);
    let renamed = store.rename_registered_model("recs", "recs2".into()).await.expect("rename");
    assert_eq!(renamed.aliases.len(), 1);
    assert_eq!(store.get_model_version("recs2", 2).await.expect("moved").tags.len(), 1);
    assert!(store.get_registered_model("recs").await.is_err_and(|e| not_found(&e)));
    let models = store.search_registered_models(q("name LIKE 'recs%'", &[], 10)).await.expect("search");
    assert_eq!(models.items.len(), 1);
    store.delete_model_version("recs2", 1).await.expect("delete version");
    assert!(store.get_model_version("recs2", 1).await.is_err_and(|e| not_found(&e)));
    store.delete_registered_model("recs2").await.expect("delete model");
    assert!(store.get_registered_model("recs2").await.is_err_and(|e| not_found(&e)));
}
