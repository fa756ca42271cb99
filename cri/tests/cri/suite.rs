//! The private containerd with its CRI plugin, the images it runs, and a CRI client of it.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::common::containerd::*;
use crate::common::engine::*;
use crate::common::*;

mod cleanup;

/// The containerd namespace of the CRI plugin.
pub const NS: &str = "k8s.io";
/// The images the suite builds and imports.
pub const BUSYBOX: &str = "casulo.test/busybox:latest";
pub const PAUSE: &str = "casulo.test/pause:latest";
/// The second runtime handler, runc, selected by a pod's `runtimeClassName` (the CRI's
/// `runtime_handler`), beside casulo, the default.
pub const REF_HANDLER: &str = "runc-ref";
/// The label that ties a pod and its containers to their scenario.
pub const SCENARIO: &str = "casulo.test/scenario";
/// Where the CNI library keeps each attachment's result until it is deleted.
const CNI_CACHE: &str = "/var/lib/cni";
/// The longest any one CRI call may take before the scenario fails.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// The pause program of the sandbox image: the pod's pid 1 where the pod shares a pid
/// namespace, so it reaps (ash's `wait` collects any child, also those reparented to it) and it
/// exits on SIGTERM and SIGINT, as the kubelet's pause does.
const PAUSE_SCRIPT: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// What one scenario made, for its cleanup and its leftover checks.
#[derive(Default, Clone)]
pub struct Made {
    /// containerd's ids of its sandboxes and containers.
    pub ids: Vec<String>,
    /// Its sandboxes' ids (whose shims are named after them).
    pub sandboxes: Vec<String>,
    /// Its pods' cgroup parents (`/<kubepods>/besteffort/pod<uid>`), which the kubelet makes
    /// and removes.
    pub cgroup_parents: Vec<String>,
    /// Host mount points a scenario made and must see undone.
    pub host_mounts: Vec<PathBuf>,
}

/// The private daemon and everything the scenarios need to drive it. Dropping it stops the
/// daemon and removes all it made.
pub struct Suite {
    pub dir: PathBuf,
    pub address: PathBuf,
    /// The logging wrapper given to the runc shim as `BinaryName`.
    wrapper: PathBuf,
    /// One line per runtime invocation, written by the wrapper.
    calls: PathBuf,
    /// The shim's `Root` option: the runtime's `--root` is `<runc_root>/k8s.io`.
    pub runc_root: PathBuf,
    /// The runc binary of [`REF_HANDLER`] and its shim's `Root`, when runc is installed.
    pub reference: Option<(PathBuf, PathBuf)>,
    /// The top cgroup of the pods, named like the kubelet's `kubepods` with this run's prefix
    /// (see [`Suite::kubepods_top`]).
    pub kubepods: String,
    /// Whether the pods' cgroups are the systemd driver's (`CASULO_TEST_SYSTEMD_CGROUP`):
    /// the handlers' `SystemdCgroup = true`, pod slices as cgroup parents.
    pub systemd: bool,
    /// The CNI bridge of the pods that have a network of their own.
    pub bridge: String,
    daemon: Mutex<Option<Daemon>>,
    /// Whether the CNI library's cache directory existed before: if not, it is removed at the
    /// end when empty (containerd 1.6 has no setting for it).
    had_cni_cache: bool,
    tokio: tokio::runtime::Runtime,
    channel: Channel,
    made: Mutex<HashMap<String, Made>>,
}

/// Why the suite cannot run here.
pub struct Skip(pub String);

impl Suite {
    /// Start the daemon with the CRI plugin, import the images and wait until the CRI says the
    /// runtime and the network are ready.
    pub fn start() -> Result<Suite, Skip> {
        let pid = std::process::id();
        // Short on purpose: unix socket paths are limited to 107 bytes.
        let dir = PathBuf::from(format!("/tmp/cri-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let address = dir.join("c.sock");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let channel = {
            let _guard = tokio.enter();
            let path = address.clone();
            Endpoint::try_from("http://[::]:0")
                .unwrap()
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
        };
        let s = Suite {
            wrapper: dir.join("runtime-wrapper"),
            calls: dir.join("runtime-calls.log"),
            runc_root: dir.join("runc-root"),
            reference: ["/usr/sbin/runc", "/usr/bin/runc"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .map(|p| (p, dir.join("runc-ref-root"))),
            kubepods: Suite::kubepods_top(pid, systemd_cgroup()),
            systemd: systemd_cgroup(),
            bridge: format!("cri{pid}br"),
            daemon: Mutex::new(None),
            had_cni_cache: Path::new(CNI_CACHE).exists(),
            tokio,
            channel,
            made: Default::default(),
            address,
            dir,
        };
        // From here on, Drop cleans up whatever happens.
        // containerd's overlayfs snapshots cannot have their upper layers on an overlayfs
        // (a checkout under /tmp in the cgroup v2 guest): a tmpfs of the suite's own then,
        // which the end unmounts with the rest.
        let on_overlay = nix::sys::statfs::statfs(&s.dir)
            .is_ok_and(|f| f.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
        if on_overlay {
            nix::mount::mount(
                Some("tmpfs"),
                &s.dir,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("mode=0700"),
            )
            .expect("a tmpfs for the suite's directory");
        }
        write_wrapper(&s.wrapper, &s.calls, &[]);
        let config = s.write_config(pid);
        *s.daemon.lock().unwrap() = Some(Daemon::spawn(&s.dir, &s.address, &config));
        s.wait_ready()?;
        s.import_images();
        Ok(s)
    }

    /// containerd's configuration, returned; the CNI configuration, written.
    fn write_config(&self, pid: u32) -> String {
        let dir = self.dir.display();
        let config = format!(
            r#"version = 2
root = "{dir}/root"
state = "{dir}/state"

[grpc]
  address = "{dir}/c.sock"

[ttrpc]
  address = "{dir}/c.sock.ttrpc"

[debug]
  level = "debug"

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  # The sandbox asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE; with this the CRI
  # plugin keeps the score at or above the daemon's own when the test runs without it.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "casulo"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.casulo]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.casulo.options]
  BinaryName = "{wrapper}"
  Root = "{dir}/runc-root"
  SystemdCgroup = {systemd}

{reference}
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{dir}/cni"
  max_conf_num = 1
"#,
            wrapper = self.wrapper.display(),
            systemd = self.systemd,
            reference = self
                .reference
                .as_ref()
                .map(|(bin, root)| format!(
                    r#"[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{REF_HANDLER}]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{REF_HANDLER}.options]
  BinaryName = "{}"
  Root = "{}"
  SystemdCgroup = {}
"#,
                    bin.display(),
                    root.display(),
                    self.systemd,
                ))
                .unwrap_or_default(),
        );
        // A bridge without an address on the host (no gateway, no masquerade): the pods reach
        // each other and nothing else, and the host's routes stay as they are.
        let cni = serde_json::json!({
            "cniVersion": "0.4.0",
            "name": format!("cri{pid}"),
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                "isGateway": false,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": format!("10.{}.{}.0/24", 200 + pid % 50, (pid / 50) % 250)}]],
                    "dataDir": format!("{dir}/ipam"),
                },
            }],
        });
        std::fs::create_dir_all(self.dir.join("cni")).unwrap();
        std::fs::write(self.dir.join("cni/10-cri.conflist"), cni.to_string()).unwrap();
        config
    }

    /// Wait until containerd answers the CRI's `Status` with the runtime and the network
    /// ready. A daemon that answers without a CRI service (its plugin did not load here) is a
    /// reason to skip, with the plugin's error from the log.
    fn wait_ready(&self) -> Result<(), Skip> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let exited = self
                .daemon
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|d| d.exited());
            if let Some(st) = exited {
                panic!(
                    "containerd exited at start ({st}): {}",
                    self.daemon_log_tail()
                );
            }
            if self.address.exists() {
                let status = self.cri(|mut c| async move {
                    c.status(cri::StatusRequest { verbose: false }).await
                });
                match status {
                    Ok(st) => {
                        let conds = st.status.map(|s| s.conditions).unwrap_or_default();
                        if conds.len() >= 2 && conds.iter().all(|c| c.status) {
                            return Ok(());
                        }
                    }
                    Err(e) if e.contains("Unimplemented") => {
                        let log = self.daemon_log();
                        let why = log
                            .lines()
                            .find(|l| {
                                l.contains("io.containerd.grpc.v1.cri") && l.contains("failed")
                            })
                            .unwrap_or("no CRI service")
                            .to_string();
                        return Err(Skip(format!(
                            "containerd's CRI plugin did not start: {why}"
                        )));
                    }
                    Err(_) => {}
                }
            }
            assert!(
                Instant::now() < deadline,
                "containerd's CRI was not ready within 60 s: {}",
                self.daemon_log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The busybox image (`sh` as its command) and the pause image (the same layer, with
    /// [`PAUSE_SCRIPT`]), as OCI archives imported into the CRI's namespace.
    fn import_images(&self) {
        let images = [
            (
                BUSYBOX,
                "busybox",
                serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]}),
            ),
            (
                PAUSE,
                "pause",
                serde_json::json!({"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh", "-c", PAUSE_SCRIPT]}),
            ),
        ];
        for (image, name, config) in images {
            let archive =
                build_oci_archive(rootfs(), &self.dir.join(format!("oci-{name}")), config)
                    .unwrap_or_else(|e| panic!("build the {name} image: {e}"));
            let base = image.rsplit_once(':').unwrap().0;
            let r = self.ctr(&[
                "images",
                "import",
                "--base-name",
                base,
                archive.to_str().unwrap(),
            ]);
            assert!(r.ok(), "ctr images import {name}: {}", describe(&r));
            let _ = std::fs::remove_file(&archive);
            let _ = std::fs::remove_dir_all(self.dir.join(format!("oci-{name}")));
        }
        // The CRI plugin learns of imported images from containerd's events: wait until it
        // knows both.
        for image in [BUSYBOX, PAUSE] {
            let seen = wait_until(&format!("the CRI knows image {image}"), || {
                self.image_status(image).is_ok_and(|s| s.is_some())
            });
            assert!(seen.is_ok(), "{seen:?}");
        }
    }

    fn image_status(&self, image: &str) -> Result<Option<cri::Image>, String> {
        let req = cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            verbose: false,
        };
        let channel = self.channel.clone();
        self.call(async move { ImageServiceClient::new(channel).image_status(req).await })
            .map(|r| r.image)
    }

    fn daemon_log(&self) -> String {
        let daemon = self.daemon.lock().unwrap();
        daemon.as_ref().map(|d| d.log()).unwrap_or_default()
    }

    pub fn daemon_log_tail(&self) -> String {
        let daemon = self.daemon.lock().unwrap();
        daemon.as_ref().map(|d| d.log_tail(40)).unwrap_or_default()
    }

    /// `ctr --address ... --namespace k8s.io ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Run {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(&self.address)
            .arg("--namespace")
            .arg(NS)
            .args(args);
        output_within(c, Duration::from_secs(60))
    }

    /// Run `f` with a client of the CRI runtime service, waiting at most [`CALL_LIMIT`]; a
    /// gRPC error becomes its code and message.
    pub fn cri<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(f(RuntimeServiceClient::new(self.channel.clone())))
    }

    fn call<T>(
        &self,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        self.tokio.block_on(async {
            match tokio::time::timeout(CALL_LIMIT, fut).await {
                Err(_) => Err(format!("no answer within {CALL_LIMIT:?}")),
                Ok(Err(st)) => Err(format!("{:?}: {}", st.code(), st.message())),
                Ok(Ok(r)) => Ok(r.into_inner()),
            }
        })
    }

    /// Note what scenario `scenario` made.
    pub fn record(&self, scenario: &str, f: impl FnOnce(&mut Made)) {
        f(self
            .made
            .lock()
            .unwrap()
            .entry(scenario.to_string())
            .or_default());
    }

    pub fn made(&self, scenario: &str) -> Made {
        self.made
            .lock()
            .unwrap()
            .get(scenario)
            .cloned()
            .unwrap_or_default()
    }

    /// The runtime's `state` of container `id` from its state root (not through containerd).
    pub fn runtime_status(&self, id: &str) -> Option<String> {
        let mut c = Command::new(runtime());
        c.arg("--root")
            .arg(self.runc_root.join(NS))
            .args(["state", id]);
        let r = output_within(c, Duration::from_secs(20));
        r.ok().then(|| {
            serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap_or_default()["status"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
    }

    /// The shim's socket for sandbox `id`.
    fn shim_socket(&self, id: &str) -> PathBuf {
        shim_socket(&self.address, NS, id)
    }

    /// The runtime invocations so far, for the check that the runtime under test ran them.
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}
