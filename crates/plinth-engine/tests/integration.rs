//! Use cases against a real embedded store: jobs survive a restart.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should fail loudly

use plinth_core::audit::Actor;
use std::sync::Arc;

use plinth_artifacts::ArtifactStore;
use plinth_core::jobs::{Job, JobStatus};
use plinth_engine::Platform;
use plinth_engine::jobs::JobRunner;
use plinth_store::{MetadataStore, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_left_running_by_a_crash_run_again_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = dir.path().join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let mut data = String::new();
    for u in 0..20 {
        for i in 0..10 {
            if (u + i) % 3 != 0 {
                data.push_str(&format!("{u},{i}\n"));
            }
        }
    }
    std::fs::write(datasets.join("d.csv"), data).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("plinth.db")).unwrap());
    // A job the previous process had started when it died.
    store
        .create_job(Job {
            job_id: "job-interrupted".into(),
            kind: plinth_core::jobs::JobKind::TrainRecommender,
            status: JobStatus::Running,
            spec: serde_json::json!({"data": "d.csv", "algo": "popularity"}),
            result: None,
            error: None,
            attempts: 1,
            created_time: 1,
            started_time: Some(1),
            finished_time: None,
            worker: Some("worker-of-a-dead-process".into()),
            lease_until: Some(i64::MAX),
            cancel_requested: false,
            workspace: "default".into(),
        })
        .await
        .unwrap();
    // One that was running each of the last three times the process died:
    // it may be what kills it, so it is not started again.
    store
        .create_job(Job {
            job_id: "job-deadly".into(),
            kind: plinth_core::jobs::JobKind::TrainRecommender,
            status: JobStatus::Running,
            spec: serde_json::json!({"data": "d.csv", "algo": "popularity"}),
            result: None,
            error: None,
            attempts: plinth_engine::jobs::MAX_ATTEMPTS,
            created_time: 2,
            started_time: Some(2),
            finished_time: None,
            worker: Some("worker-of-a-dead-process".into()),
            lease_until: Some(i64::MAX),
            cancel_requested: false,
            workspace: "default".into(),
        })
        .await
        .unwrap();
    let platform =
        Platform::new(store.clone(), ArtifactStore::local(dir.path().join("artifacts")).unwrap()).await.unwrap();
    let runner = JobRunner::start(platform, datasets).await.unwrap();
    let (deadly, _) = runner.get(&Actor::local(), "job-deadly").await.unwrap();
    assert_eq!(deadly.status, JobStatus::Failed, "{deadly:?}");
    assert!(deadly.error.unwrap().contains("interrupted 3 times"));
    // A queued job can be withdrawn; a finished one cannot.
    let queued = runner
        .submit_recommender(&Actor::local(), serde_json::json!({"data": "d.csv", "algo": "popularity"}))
        .await
        .unwrap();
    match runner.cancel(&Actor::local(), &queued.job_id).await {
        // Withdrawn, or (if the worker started it already) stopped, or it ended first.
        Ok(job) => assert!(matches!(job.status, JobStatus::Cancelled | JobStatus::Succeeded), "{job:?}"),
        Err(e) => assert!(e.to_string().contains("ended"), "{e}"),
    }
    assert!(runner.cancel(&Actor::local(), "job-deadly").await.unwrap_err().to_string().contains("already ended"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (job, _) = runner.get(&Actor::local(), "job-interrupted").await.unwrap();
        if job.status.is_finished() {
            assert_eq!(job.status, JobStatus::Succeeded, "{job:?}");
            assert_eq!(job.attempts, 2);
            assert!(job.result.unwrap()["run_id"].is_string());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "job did not finish");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_training_stops_when_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = dir.path().join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let data: String = (0..200).flat_map(|u| (0..30).map(move |i| format!("{u},{}\n", (u * 7 + i) % 300))).collect();
    std::fs::write(datasets.join("d.csv"), data).unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("plinth.db")).unwrap());
    let platform =
        Platform::new(store.clone(), ArtifactStore::local(dir.path().join("artifacts")).unwrap()).await.unwrap();
    let runner = JobRunner::start(platform, datasets).await.unwrap();
    // Hours of epochs: it only ends by being cancelled.
    let spec = serde_json::json!({"data": "d.csv", "algo": "bpr", "iterations": 10_000_000, "register": "never",
                                  "experiment": "cancelling"});
    let job = runner.submit_recommender(&Actor::local(), spec).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (j, progress) = runner.get(&Actor::local(), &job.job_id).await.unwrap();
        if j.status == JobStatus::Running && progress.is_some_and(|p| p.0 == "bpr" && p.1 > 0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the job never started training: {j:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let started = std::time::Instant::now();
    let cancelled = runner.cancel(&Actor::local(), &job.job_id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled, "{cancelled:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "stopped at the next epoch");
    assert!(cancelled.error.unwrap().contains("cancelled while running"));
    assert!(runner.cancel(&Actor::local(), &job.job_id).await.unwrap_err().to_string().contains("already ended"));
    // Its run is KILLED and nothing was registered.
    let exp = store.get_experiment_by_name("cancelling").await.unwrap().unwrap();
    let runs = store
        .search_runs(plinth_store::RunSearch {
            experiment_ids: vec![exp.experiment_id],
            query: plinth_core::query::RunQuery { max_results: 10, ..Default::default() },
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].info.status, plinth_core::runs::RunStatus::Killed);
    assert!(store.get_registered_model("never").await.is_err());
}

/// Usage over a clock the test moves: a model registered 40 days before its
/// first deployment has that lead time and, served, is stale past 30 days.
#[tokio::test]
async fn usage_measures_lead_time_and_staleness_on_the_platforms_clock() {
    use plinth_core::clock::ManualClock;
    use plinth_core::deployments::{Deployment, ModelRef, Variant};
    use plinth_core::registry::NewModelVersion;
    use plinth_core::runs::NewRun;
    use plinth_core::usage::{DAY_MS, UsageQuery};

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at(100 * DAY_MS + 3_600_000);
    let store = SqliteStore::open_with_clock(dir.path().join("p.db"), Default::default(), clock.clone()).unwrap();
    let platform = Platform::with_clock(Arc::new(store), ArtifactStore::memory(), clock.clone()).await.unwrap();
    let started = platform.now_ms();
    let run = platform
        .create_run(NewRun {
            experiment_id: "0".into(),
            user_id: "t".into(),
            run_name: None,
            start_time: Some(started),
            tags: vec![],
        })
        .await
        .unwrap();
    platform.create_registered_model("m".into(), None, vec![]).await.unwrap();
    platform
        .create_model_version(NewModelVersion {
            name: "m".into(),
            source: format!("runs:/{}/model", run.info.run_id),
            run_id: Some(run.info.run_id.clone()),
            run_link: None,
            description: None,
            tags: vec![],
            model_id: None,
            storage_location: String::new(),
        })
        .await
        .unwrap();
    clock.advance(40 * DAY_MS);
    let variant = Variant { name: "a".into(), model: ModelRef::parse("m/1").unwrap(), weight: 1 };
    let spec = Deployment {
        name: "d".into(),
        salt: "d".into(),
        variants: vec![variant],
        shadow: None,
        mode: Default::default(),
        metrics: Vec::new(),
        policy: None,
        created_time: 0,
        updated_time: 0,
        workspace: "default".into(),
    };
    platform.create_deployment(spec).await.unwrap();

    let now = platform.now_ms();
    let u = platform.usage(UsageQuery { days: 30, stale_days: 30, now, workspace: None }).await.unwrap();
    assert_eq!(u.daily.len(), 30);
    // The run and the version are older than the window; the deployment is today's.
    assert_eq!(u.daily.iter().map(|d| d.runs_created + d.versions_registered).sum::<i64>(), 0);
    assert_eq!(u.daily.last().unwrap().deployments_created, 1);
    assert_eq!((u.active_users_1d, u.active_users_7d, u.active_users_window), (1, 1, 1));
    let [lead] = &u.lead_times[..] else { panic!("{:?}", u.lead_times) };
    assert_eq!(lead.registration_to_deploy_ms(), 40 * DAY_MS);
    assert_eq!(lead.run_to_deploy_ms(), Some(40 * DAY_MS));
    assert_eq!(u.median_registration_to_deploy_ms, Some(40 * DAY_MS));
    assert!(u.served.iter().all(|s| s.stale) && u.served.len() == 1);
    assert_eq!(u.stale_share, Some(1.0));
    let fresh = platform.usage(UsageQuery { days: 30, stale_days: 50, now, workspace: None }).await.unwrap();
    assert_eq!(fresh.stale_share, Some(0.0));
    // Out of range is refused.
    assert!(platform.usage(UsageQuery { days: 0, stale_days: 30, now, workspace: None }).await.is_err());
}

/// A platform acting for a fresh, non-admin user of `store`.
async fn as_user(platform: &Platform, name: &str) -> Platform {
    let user = platform.accounts().create_user(name, "a-long-password-1", false).await.unwrap();
    let principal = plinth_core::auth::Principal {
        user_id: user.id,
        username: user.username,
        is_admin: false,
        via: plinth_core::auth::Via::Password,
    };
    platform.acting(Actor::of_request(Some(Arc::new(principal)), None))
}

#[tokio::test]
async fn searches_keep_to_what_the_caller_may_read_and_page_exactly() {
    use plinth_core::access::{Grant, Permission, ResourceType};
    use plinth_core::experiments::ViewType;
    use plinth_core::query::{ExperimentQuery, ExperimentSearch, RegisteredModelQuery};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("plinth.db")).unwrap());
    let artifacts = ArtifactStore::local(dir.path().join("artifacts")).unwrap();
    let platform = Platform::new(store, artifacts).await.unwrap().with_default_permission(Permission::NoPermissions);
    let owner = as_user(&platform, "owner").await;
    let reader = as_user(&platform, "reader").await;

    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(owner.create_experiment(format!("exp-{i:02}"), None, vec![]).await.unwrap());
        owner.create_registered_model(format!("model-{i:02}"), None, vec![]).await.unwrap();
    }
    // The reader may read every third experiment and model, through a role; one of those is also denied.
    let role = platform.create_role("default", "readers", None).await.unwrap();
    for i in (0..30).step_by(3) {
        platform
            .add_role_permission(role.id, Grant::new(ResourceType::Experiment, &ids[i], Permission::Read).unwrap())
            .await
            .unwrap();
        let model = format!("model-{i:02}");
        platform
            .add_role_permission(role.id, Grant::new(ResourceType::RegisteredModel, &model, Permission::Read).unwrap())
            .await
            .unwrap();
    }
    platform.assign_role("reader", role.id).await.unwrap();
    platform.grant_permission("reader", ResourceType::Experiment, &ids[3], Permission::Deny).await.unwrap();

    // Pages of four hold only readable experiments, and all of them, in order.
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let query = ExperimentQuery { max_results: 4, offset, ..Default::default() };
        let page = reader.search_experiments(ExperimentSearch { view: ViewType::ActiveOnly, query }).await.unwrap();
        assert!(page.items.len() <= 4);
        seen.extend(page.items.into_iter().map(|e| e.name));
        match page.next_offset {
            Some(next) => offset = next,
            None => break,
        }
    }
    let want: Vec<String> = (0..30).step_by(3).filter(|i| *i != 3).map(|i| format!("exp-{i:02}")).collect();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    assert_eq!(seen_sorted, want, "DENY wins over the role's READ");
    let models =
        reader.search_registered_models(RegisteredModelQuery { max_results: 100, ..Default::default() }).await.unwrap();
    assert_eq!(models.items.len(), 10);

    // Unreadable: the store's own not-found sentence; readable but not writable: PERMISSION_DENIED.
    let hidden = reader.get_experiment(&ids[1]).await.unwrap_err();
    assert_eq!(
        (hidden.kind(), hidden.to_string()),
        (plinth_core::ErrorKind::NotFound, format!("No Experiment with id={} exists", ids[1]))
    );
    let refused = reader.rename_experiment(&ids[0], "mine".into()).await.unwrap_err();
    assert_eq!(refused.kind(), plinth_core::ErrorKind::PermissionDenied);
    // The owner manages what they made; a renamed model keeps its grants under the new name.
    owner.rename_registered_model("model-00", "model-zero".into()).await.unwrap();
    assert!(reader.get_registered_model("model-zero").await.is_ok());
    owner.delete_registered_model("model-zero").await.unwrap();
    owner.create_registered_model("model-zero".into(), None, vec![]).await.unwrap();
    let gone = reader.get_registered_model("model-zero").await.unwrap_err();
    assert_eq!(gone.kind(), plinth_core::ErrorKind::NotFound, "a deleted model's grants do not pass to a new one");
}
