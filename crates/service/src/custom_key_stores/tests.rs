//! Custom key store rules against a fake cluster: the prerequisites of CreateCustomKeyStore, the
//! quota, the ConnectionErrorCode of each failed connection, the asynchronous connection's states,
//! and the crash-safe rotation of kmsuser's password (a process that dies, or an HSM that fails,
//! midway leaves a store that connects next time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use strongroom_keystore::FileRootKey;
use strongroom_storage::sqlite::SqliteStore;
use strongroom_types::Namespace;
use zeroize::Zeroizing;

use super::*;
use crate::{Caller, ManualClock};

const ANCHOR: &str = "-----BEGIN CERTIFICATE-----\nANCHOR\n-----END CERTIFICATE-----\n";

/// Changes a cluster before a connection attempt.
type ChangeCluster = Box<dyn Fn(&mut ClusterInfo)>;

#[derive(Default)]
struct FakeClusters {
    clusters: Mutex<HashMap<String, ClusterInfo>>,
    login: Mutex<Option<ConnectionError>>,
    /// When set, logins wait for a permit: the test decides when a connection attempt ends.
    gate: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    logouts: Arc<std::sync::atomic::AtomicUsize>,
    /// The kmsuser password of each HSM, by cluster id; a cluster without an entry accepts any.
    hsms: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// How the next moves of kmsuser's password end.
    moves: Arc<Mutex<Move>>,
    /// The certificates of deleted clusters that backups still hold, by cluster id.
    backed_up: Mutex<HashMap<String, String>>,
    /// The clusters whose waiting HSMs a committed connection asked to bring in, in order.
    admissions: Mutex<Vec<String>>,
}

/// How a move of kmsuser's password to a new one ends in the fake.
#[derive(Clone, Default)]
enum Move {
    /// Every HSM takes the new password.
    #[default]
    Complete,
    /// This many HSMs take it, then the next one fails.
    FailAfter(usize),
    /// This many HSMs take it, then the process "dies": the move never returns, so nothing after it
    /// runs, until the test is over and drops the sender of the channel (then it fails).
    CrashAfter(
        usize,
        Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
        Arc<tokio::sync::Notify>,
    ),
}

struct FakeConnected {
    logouts: Arc<std::sync::atomic::AtomicUsize>,
    hsms: Arc<Mutex<HashMap<String, Vec<String>>>>,
    moves: Arc<Mutex<Move>>,
    cluster_id: String,
    /// The password each HSM logged in with, when the fake keeps the cluster's passwords.
    logged_in: Mutex<Vec<String>>,
}

impl ConnectedCluster for FakeConnected {
    fn move_password(&self, new: &str) -> Result<(), HsmError> {
        let mode = self.moves.lock().unwrap().clone();
        let count = match self.hsms.lock().unwrap().get(&self.cluster_id) {
            Some(hsms) => hsms.len(),
            None => return Ok(()),
        };
        for index in 0..count {
            match &mode {
                Move::FailAfter(n) if *n == index => {
                    return Err(HsmError(format!("HSM {index} failed")));
                }
                Move::CrashAfter(n, stop, crashed) if *n == index => {
                    crashed.notify_one();
                    let _ = stop.lock().unwrap().recv();
                    return Err(HsmError("the process is gone".to_owned()));
                }
                _ => {}
            }
            let mut hsms = self.hsms.lock().unwrap();
            let hsm = &mut hsms.get_mut(&self.cluster_id).unwrap()[index];
            let old = &self.logged_in.lock().unwrap()[index];
            // As C_SetPIN, which logs in with the old password first.
            if hsm != old && hsm != new {
                return Err(HsmError(format!("HSM {index} refuses the old password")));
            }
            *hsm = new.to_owned();
        }
        match &mode {
            Move::CrashAfter(n, stop, crashed) if *n == count => {
                crashed.notify_one();
                let _ = stop.lock().unwrap().recv();
                Err(HsmError("the process is gone".to_owned()))
            }
            _ => Ok(()),
        }
    }
    fn logout(&self) {
        self.logouts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn generate_key(&self, _label: &str) -> Result<(), HsmError> {
        Ok(())
    }
    fn delete_key(&self, _label: &str) {}
    fn random(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        Ok(vec![7; len])
    }
    fn encrypt(&self, _: &str, _: &[u8], _: &[u8]) -> Result<(Vec<u8>, Vec<u8>), HsmError> {
        Err(HsmError("not in this fake".to_owned()))
    }
    fn decrypt(
        &self,
        _: &str,
        _: &[u8],
        _: &[u8],
        _: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, HsmError> {
        Err(HsmError("not in this fake".to_owned()))
    }
}

#[async_trait]
impl HsmClusters for FakeClusters {
    async fn cluster(&self, _: &Namespace, id: &str) -> Result<Option<ClusterInfo>, Error> {
        Ok(self.clusters.lock().unwrap().get(id).cloned())
    }
    async fn cluster_certificate(&self, _: &Namespace, id: &str) -> Result<Option<String>, Error> {
        if let Some(cluster) = self.clusters.lock().unwrap().get(id) {
            return Ok(cluster.cluster_certificate_pem.clone());
        }
        Ok(self.backed_up.lock().unwrap().get(id).cloned())
    }
    async fn connect(
        &self,
        _: &Namespace,
        cluster_id: &str,
        _: &str,
        _: &str,
        passwords: Vec<Zeroizing<String>>,
    ) -> Result<Arc<dyn ConnectedCluster>, ConnectionError> {
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.acquire().await.expect("the gate stays open").forget();
        }
        if let Some(code) = *self.login.lock().unwrap() {
            return Err(code);
        }
        let mut logged_in = Vec::new();
        if let Some(hsms) = self.hsms.lock().unwrap().get(cluster_id) {
            for hsm in hsms {
                match passwords.iter().find(|p| p.as_str() == hsm) {
                    Some(password) => logged_in.push(password.to_string()),
                    None => return Err(ConnectionError::InvalidCredentials),
                }
            }
        }
        Ok(Arc::new(FakeConnected {
            logouts: self.logouts.clone(),
            hsms: self.hsms.clone(),
            moves: self.moves.clone(),
            cluster_id: cluster_id.to_owned(),
            logged_in: Mutex::new(logged_in),
        }))
    }
    async fn admit_waiting_hsms(
        &self,
        _: &Namespace,
        cluster_id: &str,
    ) -> Result<Vec<String>, Error> {
        self.admissions.lock().unwrap().push(cluster_id.to_owned());
        Ok(Vec::new())
    }
}

/// Records connection changes, as the audit trail would.
#[derive(Default)]
struct RecordedEvents(Mutex<Vec<(String, Option<String>)>>);

impl crate::ServiceEvents for RecordedEvents {
    fn key_rotated(&self, _key: &strongroom_types::KeyRecord) {}
    fn key_deleted(&self, _key: &strongroom_types::KeyRecord) {}
    fn key_material_expired(&self, _key: &strongroom_types::KeyRecord) {}
    fn replica_created(&self, _replica: &strongroom_types::KeyRecord) {}
    fn custom_key_store_connection(&self, change: &ConnectionChange) {
        self.0.lock().unwrap().push((
            change.connection_state.to_owned(),
            change.connection_error.map(str::to_owned),
        ));
    }
}

/// The connection changes reported so far, once there are `count` of them: a change is reported just
/// after the store's record says so, so a test that saw the record may look a moment too early.
async fn reported(events: &RecordedEvents, count: usize) -> Vec<(String, Option<String>)> {
    for _ in 0..1000 {
        let seen = events.0.lock().unwrap().clone();
        if seen.len() >= count {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    events.0.lock().unwrap().clone()
}

/// The store's state once no connection attempt is under way (the attempt runs in the background).
async fn settled(kms: &Kms, caller: &Caller, id: &str) -> (String, Option<String>) {
    for _ in 0..1000 {
        let page = kms
            .describe_custom_key_stores(caller, Some(id), None, None, None)
            .await
            .unwrap();
        let store = &page.items[0];
        if store.connection_state != state::CONNECTING {
            return (
                store.connection_state.clone(),
                store.connection_error.clone(),
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the connection attempt never ended");
}

/// Creates store "s" on a new cluster `cluster_id` of two HSMs, with the password
/// "kmsuser-password"; returns its id.
async fn store_on(kms: &Kms, clusters: &FakeClusters, caller: &Caller, cluster_id: &str) -> String {
    clusters
        .clusters
        .lock()
        .unwrap()
        .insert(cluster_id.to_owned(), cluster(&["a", "b"]));
    kms.create_custom_key_store(caller, request("s", cluster_id, ANCHOR, "kmsuser-password"))
        .await
        .unwrap()
}

fn cluster(zones: &[&str]) -> ClusterInfo {
    ClusterInfo {
        active: true,
        hsms: zones
            .iter()
            .map(|zone| ClusterHsm {
                availability_zone: (*zone).to_owned(),
                active: true,
            })
            .collect(),
        trust_anchor_pem: Some(ANCHOR.to_owned()),
        cluster_certificate_pem: Some(format!("cert of {}", zones.len())),
        crypto_users: vec![KMSUSER.to_owned()],
    }
}

fn setup(name: &str) -> (Kms, Arc<FakeClusters>, Caller) {
    let (kms, clusters, caller, _) = setup_with_events(name);
    (kms, clusters, caller)
}

fn setup_with_events(name: &str) -> (Kms, Arc<FakeClusters>, Caller, Arc<RecordedEvents>) {
    let dir = std::env::temp_dir().join(format!("strongroom-cks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("db")).unwrap());
    let root = Arc::new(FileRootKey::open_or_create(&dir.join("root.key")).unwrap());
    let clusters = Arc::new(FakeClusters::default());
    let events = Arc::new(RecordedEvents::default());
    let kms = Kms::new(store.clone(), root, Arc::new(ManualClock::starting_now()))
        .with_service_events(events.clone())
        .with_custom_key_stores(store, clusters.clone());
    let caller = Caller {
        namespace: Namespace {
            account: "111122223333".parse().unwrap(),
            region: "us-east-1".parse().unwrap(),
        },
        arn: "arn:aws:iam::111122223333:root".to_owned(),
        access_key_id: "test".to_owned(),
        source_ip: None,
        source_vpc: None,
        source_vpce: None,
        via_service: None,
    };
    (kms, clusters, caller, events)
}

fn request(
    name: &str,
    cluster_id: &str,
    anchor: &str,
    password: &str,
) -> CreateCustomKeyStoreRequest {
    CreateCustomKeyStoreRequest {
        name: name.to_owned(),
        cluster_id: Some(cluster_id.to_owned()),
        trust_anchor_pem: Some(anchor.to_owned()),
        key_store_password: Some(Zeroizing::new(password.to_owned())),
        store_type: None,
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, Error>) -> &'static str {
    result.expect_err("the call fails").code()
}

#[test]
fn create_checks_the_cluster_and_the_request() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller) = setup("create");
        {
            let mut map = clusters.clusters.lock().unwrap();
            map.insert("cluster-good".to_owned(), cluster(&["a", "b"]));
            map.insert("cluster-onezone".to_owned(), cluster(&["a", "a"]));
            let mut inactive = cluster(&["a", "b"]);
            inactive.active = false;
            map.insert("cluster-inactive".to_owned(), inactive);
            for n in 0..11 {
                let mut info = cluster(&["a", "b"]);
                info.cluster_certificate_pem = Some(format!("cert of cluster-{n}"));
                map.insert(format!("cluster-{n}"), info);
            }
        }
        let create = |name: &str, cluster: &str, anchor: &str, password: &str| {
            kms.create_custom_key_store(&caller, request(name, cluster, anchor, password))
        };
        let pw = "kmsuser-password";
        assert_eq!(
            code(create("s", "cluster-none", ANCHOR, pw).await),
            "CloudHsmClusterNotFoundException"
        );
        assert_eq!(
            code(create("s", "cluster-inactive", ANCHOR, pw).await),
            "CloudHsmClusterNotActiveException"
        );
        assert_eq!(
            code(create("s", "cluster-onezone", ANCHOR, pw).await),
            "CloudHsmClusterInvalidConfigurationException"
        );
        assert_eq!(
            code(create("s", "cluster-good", "other", pw).await),
            "IncorrectTrustAnchorException"
        );
        assert_eq!(
            code(create("s", "cluster-good", ANCHOR, "short").await),
            "ValidationException"
        );
        assert_eq!(
            code(create("s", "cluster-good", ANCHOR, &"x".repeat(33)).await),
            "ValidationException"
        );

        let id = create("s", "cluster-good", ANCHOR, pw).await.unwrap();
        assert_eq!(
            create("s", "cluster-good", ANCHOR, pw).await.unwrap(),
            id,
            "an identical retry"
        );
        assert_eq!(
            code(create("s", "cluster-0", ANCHOR, pw).await),
            "CustomKeyStoreNameInUseException"
        );
        assert_eq!(
            code(create("t", "cluster-good", ANCHOR, pw).await),
            "CloudHsmClusterInUseException"
        );
        for n in 0..9 {
            create(&format!("store-{n}"), &format!("cluster-{n}"), ANCHOR, pw)
                .await
                .unwrap();
        }
        assert_eq!(
            code(create("store-10", "cluster-10", ANCHOR, pw).await),
            "LimitExceededException"
        );
        let page = kms
            .describe_custom_key_stores(&caller, None, None, Some(4), None)
            .await
            .unwrap();
        assert_eq!(page.items.len(), 4);
        let marker = page.next_marker.expect("more pages");
        let rest = kms
            .describe_custom_key_stores(&caller, None, None, None, Some(&marker))
            .await
            .unwrap();
        assert_eq!(rest.items.len(), 6);
        assert_eq!(
            code(
                kms.describe_custom_key_stores(&caller, Some("cks-none"), None, None, None)
                    .await
            ),
            "CustomKeyStoreNotFoundException"
        );
    });
}

#[test]
fn failed_connections_carry_their_error_code() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller, events) = setup_with_events("connect");
        let id = store_on(&kms, &clusters, &caller, "cluster-good").await;
        let state = || settled(&kms, &caller, &id);
        let attempt = |setup: &dyn Fn(&mut ClusterInfo), login: Option<ConnectionError>| {
            let mut info = cluster(&["a", "b"]);
            setup(&mut info);
            clusters
                .clusters
                .lock()
                .unwrap()
                .insert("cluster-good".to_owned(), info);
            *clusters.login.lock().unwrap() = login;
        };
        let cases: Vec<(ChangeCluster, Option<ConnectionError>, &str)> = vec![
            (Box::new(|c| c.crypto_users.clear()), None, "USER_NOT_FOUND"),
            (
                Box::new(|c| c.hsms.iter_mut().for_each(|h| h.active = false)),
                None,
                "INSUFFICIENT_CLOUDHSM_HSMS",
            ),
            (
                Box::new(|_| {}),
                Some(ConnectionError::InvalidCredentials),
                "INVALID_CREDENTIALS",
            ),
            (
                Box::new(|_| {}),
                Some(ConnectionError::UserLockedOut),
                "USER_LOCKED_OUT",
            ),
            (
                Box::new(|_| {}),
                Some(ConnectionError::UserLoggedIn),
                "USER_LOGGED_IN",
            ),
        ];
        for (change, login, expected) in cases {
            attempt(change.as_ref(), login);
            kms.connect_custom_key_store(&caller, &id).await.unwrap();
            assert_eq!(
                state().await,
                (state::FAILED.to_owned(), Some(expected.to_owned()))
            );
            assert_eq!(
                code(kms.connect_custom_key_store(&caller, &id).await),
                "CustomKeyStoreInvalidStateException"
            );
            kms.disconnect_custom_key_store(&caller, &id).await.unwrap();
        }
        clusters.clusters.lock().unwrap().clear();
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            state().await,
            (
                state::FAILED.to_owned(),
                Some("CLUSTER_NOT_FOUND".to_owned())
            )
        );
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();

        attempt(&|_| {}, None);
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(state().await, (state::CONNECTED.to_owned(), None));
        assert_eq!(
            reported(&events, 7).await.as_slice(),
            &[
                ("FAILED".to_owned(), Some("USER_NOT_FOUND".to_owned())),
                (
                    "FAILED".to_owned(),
                    Some("INSUFFICIENT_CLOUDHSM_HSMS".to_owned())
                ),
                ("FAILED".to_owned(), Some("INVALID_CREDENTIALS".to_owned())),
                ("FAILED".to_owned(), Some("USER_LOCKED_OUT".to_owned())),
                ("FAILED".to_owned(), Some("USER_LOGGED_IN".to_owned())),
                ("FAILED".to_owned(), Some("CLUSTER_NOT_FOUND".to_owned())),
                ("CONNECTED".to_owned(), None),
            ],
            "every attempt's end is reported"
        );
        let random = kms
            .generate_random(&caller, Some(5), Some(&id))
            .await
            .unwrap();
        assert_eq!(random.as_slice(), &[7; 5]);
        assert_eq!(
            code(kms.delete_custom_key_store(&caller, &id).await),
            "CustomKeyStoreInvalidStateException"
        );
        // Another service over the same database (a restarted server) connects the store again
        // on first use.
        let restarted = Kms::new(
            kms.store.clone(),
            kms.root_key.clone(),
            Arc::new(ManualClock::starting_now()),
        )
        .with_custom_key_stores(
            kms.custom_key_stores.records.clone().unwrap(),
            clusters.clone(),
        );
        assert!(restarted.custom_key_stores.connected(&id).is_none());
        let random = restarted
            .generate_random(&caller, Some(3), Some(&id))
            .await
            .unwrap();
        assert_eq!(random.as_slice(), &[7; 3]);
        assert!(restarted.custom_key_stores.connected(&id).is_some());
        kms.update_custom_key_store(
            &caller,
            UpdateCustomKeyStoreRequest {
                id: id.clone(),
                new_name: Some("renamed".to_owned()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            code(kms.disconnect_custom_key_store(&caller, &id).await),
            "CustomKeyStoreInvalidStateException"
        );
        kms.delete_custom_key_store(&caller, &id).await.unwrap();
    });
}

#[test]
fn connecting_is_asynchronous_and_a_disconnect_abandons_the_attempt() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller, events) = setup_with_events("connecting");
        let id = store_on(&kms, &clusters, &caller, "cluster-good").await;
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *clusters.gate.lock().unwrap() = Some(gate.clone());
        let describe = || async {
            let page = kms
                .describe_custom_key_stores(&caller, Some(&id), None, None, None)
                .await
                .unwrap();
            page.items[0].connection_state.clone()
        };

        // The call returns while the login waits at the gate.
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(describe().await, state::CONNECTING);
        kms.connect_custom_key_store(&caller, &id)
            .await
            .expect("connecting a CONNECTING store is accepted");
        assert_eq!(
            code(kms.generate_random(&caller, Some(4), Some(&id)).await),
            "CustomKeyStoreInvalidStateException"
        );
        assert_eq!(
            code(kms.delete_custom_key_store(&caller, &id).await),
            "CustomKeyStoreInvalidStateException"
        );

        // Disconnecting abandons the attempt: DISCONNECTED at once, and the late login is undone.
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(describe().await, state::DISCONNECTED);
        gate.add_permits(1);
        for _ in 0..1000 {
            if clusters.logouts.load(std::sync::atomic::Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            clusters.logouts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the abandoned attempt logged out"
        );
        assert_eq!(describe().await, state::DISCONNECTED);
        assert!(kms.custom_key_stores.connected(&id).is_none());
        assert!(events.0.lock().unwrap().is_empty(), "nothing was reported");

        // Connecting again succeeds once the gate lets it.
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(describe().await, state::CONNECTING);
        gate.add_permits(1);
        let described = kms
            .wait_for_custom_key_store_connection(&caller, &id)
            .await
            .unwrap();
        assert_eq!(
            (described.connection_state, described.connection_error),
            (state::CONNECTED.to_owned(), None)
        );
        assert_eq!(
            reported(&events, 1).await.as_slice(),
            &[("CONNECTED".to_owned(), None)]
        );
    });
}

/// The clusters whose waiting HSMs were asked for so far, once there are `count` of them (the
/// request is made in the background, just after the connection is recorded).
async fn admissions(clusters: &FakeClusters, count: usize) -> Vec<String> {
    for _ in 0..1000 {
        let seen = clusters.admissions.lock().unwrap().clone();
        if seen.len() >= count {
            return seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    clusters.admissions.lock().unwrap().clone()
}

#[test]
fn a_connection_once_recorded_brings_in_the_hsms_waiting_for_one() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller) = setup("admit");
        let id = store_on(&kms, &clusters, &caller, "cluster-admit").await;

        // A failed attempt has no connection to bring HSMs in through.
        *clusters.login.lock().unwrap() = Some(ConnectionError::InvalidCredentials);
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(settled(&kms, &caller, &id).await.0, state::FAILED);
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();

        *clusters.login.lock().unwrap() = None;
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(settled(&kms, &caller, &id).await.0, state::CONNECTED);
        assert_eq!(admissions(&clusters, 1).await, ["cluster-admit"]);

        // A store connected again after a restart asks too.
        let (restarted, _) = restart(&kms, &clusters);
        assert_eq!(
            restarted
                .resume_custom_key_store_connections()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            admissions(&clusters, 2).await,
            ["cluster-admit", "cluster-admit"]
        );
    });
}

/// Another service over the same database and clusters, as after a restart of the server.
fn restart(kms: &Kms, clusters: &Arc<FakeClusters>) -> (Kms, Arc<RecordedEvents>) {
    let events = Arc::new(RecordedEvents::default());
    let restarted = Kms::new(
        kms.store.clone(),
        kms.root_key.clone(),
        Arc::new(ManualClock::starting_now()),
    )
    .with_service_events(events.clone())
    .with_custom_key_stores(
        kms.custom_key_stores.records.clone().unwrap(),
        clusters.clone(),
    );
    (restarted, events)
}

/// Records store `id` of `namespace` in `connection_state`, as a server that stopped would have left it.
async fn record_state(kms: &Kms, namespace: &Namespace, id: &str, connection_state: &str) {
    let records = kms.custom_key_stores.records.clone().unwrap();
    let mut record = records.key_store(namespace, id).await.unwrap().unwrap();
    record.connection_state = connection_state.to_owned();
    record.connection_error =
        (connection_state == state::FAILED).then(|| "INVALID_CREDENTIALS".to_owned());
    records.put_key_store(&record).await.unwrap();
}

async fn connection_of(kms: &Kms, caller: &Caller, id: &str) -> (String, Option<String>) {
    let page = kms
        .describe_custom_key_stores(caller, Some(id), None, None, None)
        .await
        .unwrap();
    (
        page.items[0].connection_state.clone(),
        page.items[0].connection_error.clone(),
    )
}

#[test]
fn a_restart_resumes_connected_and_connecting_stores_in_every_namespace() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller) = setup("resume");
        let mut other = caller.clone();
        other.namespace.account = "444455556666".parse().unwrap();
        other.arn = "arn:aws:iam::444455556666:root".to_owned();
        let mut ids = Vec::new();
        for (n, who) in [&caller, &caller, &caller, &caller, &other]
            .into_iter()
            .enumerate()
        {
            let mut info = cluster(&["a", "b"]);
            info.cluster_certificate_pem = Some(format!("cert of cluster-{n}"));
            clusters
                .clusters
                .lock()
                .unwrap()
                .insert(format!("cluster-{n}"), info);
            let id = kms
                .create_custom_key_store(
                    who,
                    request(
                        &format!("s{n}"),
                        &format!("cluster-{n}"),
                        ANCHOR,
                        "kmsuser-password",
                    ),
                )
                .await
                .unwrap();
            ids.push(id);
        }
        let [connected, connecting, disconnected, failed, elsewhere] = ids.as_slice() else {
            unreachable!("five stores");
        };
        for (who, id) in [(&caller, connected), (&other, elsewhere)] {
            kms.connect_custom_key_store(who, id).await.unwrap();
            assert_eq!(
                settled(&kms, who, id).await,
                (state::CONNECTED.to_owned(), None)
            );
        }
        // The server stopped during an attempt, and another store had failed.
        record_state(&kms, &caller.namespace, connecting, state::CONNECTING).await;
        record_state(&kms, &caller.namespace, failed, state::FAILED).await;
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *clusters.gate.lock().unwrap() = Some(gate.clone());
        let (restarted, events) = restart(&kms, &clusters);
        drop(kms);
        assert_eq!(
            restarted
                .resume_custom_key_store_connections()
                .await
                .unwrap(),
            3,
            "the CONNECTED stores of both accounts and the CONNECTING one"
        );
        // While the logins wait: CONNECTED stays CONNECTED, CONNECTING reads CONNECTING, and a request
        // that needs the CONNECTED store waits for it instead of failing.
        assert_eq!(
            connection_of(&restarted, &caller, connected).await,
            (state::CONNECTED.to_owned(), None)
        );
        assert_eq!(
            connection_of(&restarted, &caller, connecting).await,
            (state::CONNECTING.to_owned(), None)
        );
        let waiting = {
            let restarted = Arc::new(restarted);
            let (kms, caller, id) = (restarted.clone(), caller.clone(), connected.clone());
            let task =
                tokio::spawn(async move { kms.generate_random(&caller, Some(4), Some(&id)).await });
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(!task.is_finished(), "the request waits for the connection");
            gate.add_permits(3);
            assert_eq!(task.await.unwrap().unwrap().as_slice(), &[7; 4]);
            restarted
        };
        let restarted = waiting;
        assert_eq!(
            settled(&restarted, &caller, connecting).await,
            (state::CONNECTED.to_owned(), None)
        );
        for _ in 0..1000 {
            if restarted.custom_key_stores.connected(elsewhere).is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(restarted.custom_key_stores.connected(elsewhere).is_some());
        assert!(restarted.custom_key_stores.connected(connected).is_some());
        assert_eq!(
            connection_of(&restarted, &caller, disconnected).await,
            (state::DISCONNECTED.to_owned(), None)
        );
        assert_eq!(
            connection_of(&restarted, &caller, failed).await,
            (
                state::FAILED.to_owned(),
                Some("INVALID_CREDENTIALS".to_owned())
            )
        );
        assert!(
            restarted
                .custom_key_stores
                .connected(disconnected)
                .is_none()
        );
        assert!(restarted.custom_key_stores.connected(failed).is_none());
        assert_eq!(
            reported(&events, 3).await.as_slice(),
            &[
                ("CONNECTED".to_owned(), None),
                ("CONNECTED".to_owned(), None),
                ("CONNECTED".to_owned(), None)
            ],
            "each resumed connection is reported"
        );

        // Another restart where kmsuser's password no longer works: the stores end FAILED with the
        // code, by themselves.
        *clusters.gate.lock().unwrap() = None;
        *clusters.login.lock().unwrap() = Some(ConnectionError::InvalidCredentials);
        record_state(&restarted, &caller.namespace, connecting, state::CONNECTING).await;
        let (again, events) = restart(&restarted, &clusters);
        drop(restarted);
        assert_eq!(
            again.resume_custom_key_store_connections().await.unwrap(),
            3
        );
        let failed_code = (
            state::FAILED.to_owned(),
            Some("INVALID_CREDENTIALS".to_owned()),
        );
        assert_eq!(settled(&again, &caller, connecting).await, failed_code);
        reported(&events, 3).await;
        assert_eq!(connection_of(&again, &caller, connected).await, failed_code);
        assert_eq!(connection_of(&again, &other, elsewhere).await, failed_code);
        assert_eq!(
            code(
                again
                    .generate_random(&caller, Some(4), Some(connected))
                    .await
            ),
            "CustomKeyStoreInvalidStateException"
        );
    });
}

#[test]
fn a_store_disconnected_while_it_is_connected_again_stays_disconnected() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller) = setup("resume-disconnect");
        let id = store_on(&kms, &clusters, &caller, "cluster-good").await;
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (state::CONNECTED.to_owned(), None)
        );
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *clusters.gate.lock().unwrap() = Some(gate.clone());
        let (restarted, events) = restart(&kms, &clusters);
        drop(kms);
        assert_eq!(
            restarted
                .resume_custom_key_store_connections()
                .await
                .unwrap(),
            1
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // Disconnecting does not wait for the login under way.
        restarted
            .disconnect_custom_key_store(&caller, &id)
            .await
            .unwrap();
        gate.add_permits(1);
        for _ in 0..1000 {
            if clusters.logouts.load(std::sync::atomic::Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(
            clusters.logouts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the late login was undone"
        );
        assert_eq!(
            connection_of(&restarted, &caller, &id).await,
            (state::DISCONNECTED.to_owned(), None)
        );
        assert!(restarted.custom_key_stores.connected(&id).is_none());
        assert!(events.0.lock().unwrap().is_empty(), "nothing was reported");
    });
}

/// A store on a cluster of three HSMs whose kmsuser passwords the fake keeps, all `kmsuser-password`.
async fn store_on_three_hsms(name: &str) -> (Kms, Arc<FakeClusters>, Caller, String) {
    let (kms, clusters, caller) = setup(name);
    clusters
        .clusters
        .lock()
        .unwrap()
        .insert("cluster-good".to_owned(), cluster(&["a", "b", "a"]));
    clusters.hsms.lock().unwrap().insert(
        "cluster-good".to_owned(),
        vec!["kmsuser-password".to_owned(); 3],
    );
    let id = kms
        .create_custom_key_store(
            &caller,
            request("s", "cluster-good", ANCHOR, "kmsuser-password"),
        )
        .await
        .unwrap();
    (kms, clusters, caller, id)
}

/// The store's current and pending kmsuser passwords, unwrapped.
async fn passwords(kms: &Kms, caller: &Caller, id: &str) -> (String, Option<String>) {
    let records = kms.custom_key_stores.records.clone().unwrap();
    let record = records
        .key_store(&caller.namespace, id)
        .await
        .unwrap()
        .unwrap();
    let current = unwrap_password(kms.root_key.as_ref(), &record).unwrap();
    let pending = record
        .wrapped_pending_password
        .as_ref()
        .map(|wrapped| unwrap_wrapped(kms.root_key.as_ref(), &record, wrapped).unwrap());
    (current.to_string(), pending.map(|p| p.to_string()))
}

fn hsm_passwords(clusters: &FakeClusters) -> Vec<String> {
    clusters.hsms.lock().unwrap()["cluster-good"].clone()
}

/// Makes the next move of kmsuser's password "crash" after `moved` HSMs; returns what tells the test
/// that it crashed, and what ends the crashed move once the test is over.
fn crash_after(
    clusters: &FakeClusters,
    moved: usize,
) -> (Arc<tokio::sync::Notify>, std::sync::mpsc::Sender<()>) {
    let (release, stop) = std::sync::mpsc::channel();
    let crashed = Arc::new(tokio::sync::Notify::new());
    *clusters.moves.lock().unwrap() =
        Move::CrashAfter(moved, Arc::new(Mutex::new(stop)), crashed.clone());
    (crashed, release)
}

#[test]
fn a_crash_during_the_password_rotation_leaves_a_store_that_connects_next_time() {
    // The process dies after the next password is recorded and before any HSM took it, after one
    // HSM took it, and after every HSM took it but before the record says so.
    for moved in [0, 1, 3] {
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let (kms, clusters, caller, id) = store_on_three_hsms(&format!("crash-{moved}")).await;
            let (crashed, release) = crash_after(&clusters, moved);
            kms.connect_custom_key_store(&caller, &id).await.unwrap();
            crashed.notified().await;

            // What the crash left: the store CONNECTING, the next password recorded beside the
            // current one, and each HSM holding one of the two.
            assert_eq!(
                connection_of(&kms, &caller, &id).await,
                (state::CONNECTING.to_owned(), None)
            );
            let (current, pending) = passwords(&kms, &caller, &id).await;
            assert_eq!(current, "kmsuser-password");
            let pending = pending.expect("the next password was recorded before any HSM changed");
            assert_eq!(pending.len(), 32);
            let mut expected = vec![pending.clone(); moved];
            expected.resize(3, current.clone());
            assert_eq!(hsm_passwords(&clusters), expected, "after {moved} HSMs");

            // The restarted server connects the store by itself, finishing the rotation.
            *clusters.moves.lock().unwrap() = Move::Complete;
            let (restarted, events) = restart(&kms, &clusters);
            assert_eq!(
                restarted
                    .resume_custom_key_store_connections()
                    .await
                    .unwrap(),
                1
            );
            assert_eq!(
                settled(&restarted, &caller, &id).await,
                (state::CONNECTED.to_owned(), None),
                "after {moved} HSMs"
            );
            assert_eq!(
                reported(&events, 1).await.as_slice(),
                &[("CONNECTED".to_owned(), None)]
            );
            assert_eq!(
                passwords(&restarted, &caller, &id).await,
                (pending.clone(), None),
                "the pending password is promoted"
            );
            assert_eq!(hsm_passwords(&clusters), vec![pending.clone(); 3]);
            assert!(restarted.custom_key_stores.connected(&id).is_some());

            // And it connects again after that, with a fresh password everywhere.
            restarted
                .disconnect_custom_key_store(&caller, &id)
                .await
                .unwrap();
            restarted
                .connect_custom_key_store(&caller, &id)
                .await
                .unwrap();
            assert_eq!(
                settled(&restarted, &caller, &id).await,
                (state::CONNECTED.to_owned(), None)
            );
            let (fresh, none) = passwords(&restarted, &caller, &id).await;
            assert_eq!(none, None);
            assert_ne!(fresh, pending);
            assert_eq!(hsm_passwords(&clusters), vec![fresh; 3]);
            // The crashed attempt may end now: the test is over.
            drop(release);
        });
    }
}

#[test]
fn a_crash_while_a_connected_store_is_connected_again_is_finished_at_the_next_start() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller, id) = store_on_three_hsms("crash-restore").await;
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (state::CONNECTED.to_owned(), None)
        );
        let (first, _) = passwords(&kms, &caller, &id).await;

        // A restart connects the CONNECTED store again, and the process dies during its rotation.
        let (crashed, release) = crash_after(&clusters, 2);
        let (restarted, _) = restart(&kms, &clusters);
        drop(kms);
        restarted
            .resume_custom_key_store_connections()
            .await
            .unwrap();
        crashed.notified().await;
        let (current, pending) = passwords(&restarted, &caller, &id).await;
        assert_eq!(current, first);
        let pending = pending.expect("a pending password");
        assert_eq!(
            hsm_passwords(&clusters),
            [pending.clone(), pending.clone(), first.clone()]
        );
        assert_eq!(
            connection_of(&restarted, &caller, &id).await,
            (state::CONNECTED.to_owned(), None),
            "recorded CONNECTED, as before the restart"
        );

        *clusters.moves.lock().unwrap() = Move::Complete;
        let (again, events) = restart(&restarted, &clusters);
        again.resume_custom_key_store_connections().await.unwrap();
        assert_eq!(
            again
                .generate_random(&caller, Some(4), Some(&id))
                .await
                .unwrap()
                .as_slice(),
            &[7; 4],
            "a request waits for the connection and is served"
        );
        assert_eq!(
            reported(&events, 1).await.as_slice(),
            &[("CONNECTED".to_owned(), None)]
        );
        assert_eq!(
            passwords(&again, &caller, &id).await,
            (pending.clone(), None)
        );
        assert_eq!(hsm_passwords(&clusters), vec![pending; 3]);
        drop(release);
    });
}

#[test]
fn an_hsm_failing_midway_keeps_the_pending_password_and_the_next_connect_finishes() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller, id) = store_on_three_hsms("fail-midway").await;
        *clusters.moves.lock().unwrap() = Move::FailAfter(1);
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (state::FAILED.to_owned(), Some("INTERNAL_ERROR".to_owned()))
        );
        assert!(kms.custom_key_stores.connected(&id).is_none());
        assert_eq!(
            clusters.logouts.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the failed attempt logged out"
        );
        // Nothing was rolled back: the first HSM holds the next password, still recorded.
        let (current, pending) = passwords(&kms, &caller, &id).await;
        let pending = pending.expect("the pending password is kept");
        assert_eq!(
            hsm_passwords(&clusters),
            [pending.clone(), current.clone(), current.clone()]
        );

        // The HSM works again; the next connection finishes the rotation with the pending password.
        *clusters.moves.lock().unwrap() = Move::Complete;
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            passwords(&kms, &caller, &id).await,
            (current, Some(pending.clone())),
            "disconnecting keeps the pending password"
        );
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (state::CONNECTED.to_owned(), None)
        );
        assert_eq!(passwords(&kms, &caller, &id).await, (pending.clone(), None));
        assert_eq!(hsm_passwords(&clusters), vec![pending; 3]);
    });
}

#[test]
fn a_password_set_by_the_operator_replaces_an_unfinished_rotation() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller, id) = store_on_three_hsms("operator-reset").await;
        *clusters.moves.lock().unwrap() = Move::FailAfter(2);
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (state::FAILED.to_owned(), Some("INTERNAL_ERROR".to_owned()))
        );
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();
        // The operator resets kmsuser by hand on every HSM and tells the store.
        *clusters
            .hsms
            .lock()
            .unwrap()
            .get_mut("cluster-good")
            .unwrap() = vec!["reset-by-hand".to_owned(); 3];
        kms.update_custom_key_store(
            &caller,
            UpdateCustomKeyStoreRequest {
                id: id.clone(),
                key_store_password: Some(Zeroizing::new("reset-by-hand".to_owned())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            passwords(&kms, &caller, &id).await,
            ("reset-by-hand".to_owned(), None)
        );
        *clusters.moves.lock().unwrap() = Move::Complete;
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (state::CONNECTED.to_owned(), None)
        );
        let (current, pending) = passwords(&kms, &caller, &id).await;
        assert_eq!(pending, None);
        assert_ne!(current, "reset-by-hand");
        assert_eq!(hsm_passwords(&clusters), vec![current; 3]);
    });
}

#[test]
fn an_hsm_holding_neither_recorded_password_is_invalid_credentials() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller, id) = store_on_three_hsms("neither").await;
        *clusters.moves.lock().unwrap() = Move::FailAfter(1);
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        settled(&kms, &caller, &id).await;
        kms.disconnect_custom_key_store(&caller, &id).await.unwrap();
        clusters
            .hsms
            .lock()
            .unwrap()
            .get_mut("cluster-good")
            .unwrap()[2] = "changed-behind-its-back".to_owned();
        *clusters.moves.lock().unwrap() = Move::Complete;
        kms.connect_custom_key_store(&caller, &id).await.unwrap();
        assert_eq!(
            settled(&kms, &caller, &id).await,
            (
                state::FAILED.to_owned(),
                Some("INVALID_CREDENTIALS".to_owned())
            )
        );
        let (_, pending) = passwords(&kms, &caller, &id).await;
        assert!(pending.is_some(), "a refused login changes nothing");
    });
}

#[test]
fn a_store_moves_to_a_related_cluster_after_its_own_was_deleted() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (kms, clusters, caller) = setup("related-after-deletion");
        let lineage = "cert of the original".to_owned();
        {
            let mut map = clusters.clusters.lock().unwrap();
            for (id, certificate) in [
                ("cluster-original", &lineage),
                ("cluster-restored", &lineage),
                ("cluster-stranger", &"cert of another lineage".to_owned()),
            ] {
                let mut info = cluster(&["a", "b"]);
                info.cluster_certificate_pem = Some(certificate.clone());
                map.insert(id.to_owned(), info);
            }
        }
        let id = kms
            .create_custom_key_store(
                &caller,
                request("s", "cluster-original", ANCHOR, "kmsuser-password"),
            )
            .await
            .unwrap();
        let move_to = |cluster: &str| {
            kms.update_custom_key_store(
                &caller,
                UpdateCustomKeyStoreRequest {
                    id: id.clone(),
                    cluster_id: Some(cluster.to_owned()),
                    ..Default::default()
                },
            )
        };
        // The original is deleted; no backup of it is left yet: nothing shows what it was related to.
        clusters.clusters.lock().unwrap().remove("cluster-original");
        let refused = move_to("cluster-restored").await.expect_err("refused");
        assert_eq!(refused.code(), "CloudHsmClusterNotRelatedException");
        assert!(
            refused.to_string().contains("cluster-original"),
            "{refused}"
        );
        // A backup of it holds its certificate: the related cluster is accepted, a stranger is not.
        clusters
            .backed_up
            .lock()
            .unwrap()
            .insert("cluster-original".to_owned(), lineage.clone());
        assert_eq!(
            code(move_to("cluster-stranger").await),
            "CloudHsmClusterNotRelatedException"
        );
        move_to("cluster-restored").await.unwrap();
        let page = kms
            .describe_custom_key_stores(&caller, Some(&id), None, None, None)
            .await
            .unwrap();
        assert_eq!(page.items[0].cluster_id, "cluster-restored");
    });
}
