// The Kubernetes manifests, checked without a cluster: every file and every
// rendered overlay is decoded strictly into the k8s.io/api types (an unknown
// or duplicate field is an error), the overlays are rendered with kustomize
// (sigs.k8s.io/kustomize/api, the library `kubectl kustomize` uses), and the
// invariants the server depends on are checked on what would be applied.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	kustomizetypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var overlays = []string{"base", "overlays/staging", "overlays/production"}

// objects is one rendered set of manifests, by kind.
type objects struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	serviceAccounts []*corev1.ServiceAccount
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	pdbs            []*policyv1.PodDisruptionBudget
	netpols         []*networkingv1.NetworkPolicy
}

// decodeInto decodes YAML the way the API server reads JSON: duplicate keys,
// unknown fields and fields in the wrong case are errors (sigs.k8s.io/json,
// which apimachinery uses; encoding/json alone would match case-insensitively).
func decodeInto(doc []byte, o any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, o)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// decodeStrict decodes one manifest into its k8s.io/api type; unknown and
// duplicate fields are errors, and so is a kind this test does not know.
func decodeStrict(doc []byte, into *objects) error {
	var head metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err
	}
	switch head.APIVersion + "/" + head.Kind {
	case "apps/v1/Deployment":
		return appendStrict(&into.deployments, doc)
	case "v1/Service":
		return appendStrict(&into.services, doc)
	case "v1/ConfigMap":
		return appendStrict(&into.configMaps, doc)
	case "v1/ServiceAccount":
		return appendStrict(&into.serviceAccounts, doc)
	case "autoscaling/v2/HorizontalPodAutoscaler":
		return appendStrict(&into.hpas, doc)
	case "policy/v1/PodDisruptionBudget":
		return appendStrict(&into.pdbs, doc)
	case "networking.k8s.io/v1/NetworkPolicy":
		return appendStrict(&into.netpols, doc)
	case "v1/Secret":
		return fmt.Errorf("a Secret in the repository: the bank's secret management creates them (deploy/README.md)")
	}
	return fmt.Errorf("unexpected kind %s/%s", head.APIVersion, head.Kind)
}

// appendStrict adds a new object to *list and decodes doc into it strictly.
func appendStrict[T any](list *[]*T, doc []byte) error {
	o := new(T)
	*list = append(*list, o)
	return decodeInto(doc, o)
}

// render runs kustomize on dir (relative to deploy/) and decodes the result.
func render(t *testing.T, dir string) *objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := &objects{}
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeStrict(doc, out); err != nil {
			t.Errorf("%s: rendered %s %s: %v", dir, r.GetKind(), r.GetName(), err)
		}
	}
	return out
}

// TestManifestFilesDecodeStrictly: every YAML file under base/ decodes into
// its API type with unknown fields rejected, and every kustomization.yaml
// into kustomize's own type.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	files, _ := filepath.Glob("base/*.yaml")
	more, _ := filepath.Glob("overlays/*/*.yaml")
	files = append(files, more...)
	if len(files) < 8 {
		t.Fatalf("only %d manifest files: %v", len(files), files)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			var k kustomizetypes.Kustomization
			if err := decodeInto(raw, &k); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			if err := decodeStrict(doc, &objects{}); err != nil {
				t.Errorf("%s (document %d): %v", f, i+1, err)
			}
		}
	}
}

// TestStrictDecodingRejectsUnknownFields: the decoder above is strict: a
// misspelt field (one that a lax decoder, or kubectl without server-side
// validation, would drop) fails.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	raw, err := os.ReadFile("base/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range [][2]string{
		{"readinessProbe:", "readynessProbe:"},
		{"terminationGracePeriodSeconds:", "terminationGracePeriod:"},
		{"readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"},
	} {
		bad := bytes.Replace(raw, []byte(typo[0]), []byte(typo[1]), 1)
		if err := decodeStrict(bad, &objects{}); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("%s: decoded without an unknown-field error (%v)", typo[1], err)
		}
	}
}

// TestOverlays renders each overlay and checks what it would apply.
func TestOverlays(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			o := render(t, dir)
			counts := map[string]int{"Deployment": len(o.deployments), "Service": len(o.services),
				"ConfigMap": len(o.configMaps), "ServiceAccount": len(o.serviceAccounts),
				"HorizontalPodAutoscaler": len(o.hpas), "PodDisruptionBudget": len(o.pdbs), "NetworkPolicy": len(o.netpols)}
			for kind, n := range counts {
				if n != 1 {
					t.Fatalf("%d %s objects, want 1", n, kind)
				}
			}
			checkDeployment(t, o)
			checkService(t, o)
			checkScaling(t, o)
			checkNetworkPolicy(t, o)
			if dir != "base" {
				ns := o.deployments[0].Namespace
				if ns == "" || len(validation.IsDNS1123Label(ns)) > 0 {
					t.Errorf("namespace %q", ns)
				}
				img := o.deployments[0].Spec.Template.Spec.Containers[0].Image
				if strings.HasSuffix(img, ":local") || !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
					t.Errorf("image %q: an overlay pins a release tag", img)
				}
			}
		})
	}
}

func podLabels(o *objects) labels.Set { return o.deployments[0].Spec.Template.Labels }

func selects(t *testing.T, what string, sel *metav1.LabelSelector, pods labels.Set) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() || !s.Matches(pods) {
		t.Errorf("%s selector %v does not select the server's pods %v (%v)", what, sel, pods, err)
	}
}

func checkDeployment(t *testing.T, o *objects) {
	d := o.deployments[0]
	spec := d.Spec.Template.Spec
	selects(t, "Deployment", d.Spec.Selector, podLabels(o))
	if ru := d.Spec.Strategy.RollingUpdate; ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update may take a replica away before its successor is ready: %+v", ru)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	cfg := configValues(t, o, c)

	// Probes: start-up and readiness on /ready, liveness on /health (which
	// never asks MLflow), all on the container's HTTP port.
	port := ""
	for _, p := range c.Ports {
		if p.ContainerPort == 8000 {
			port = p.Name
		}
	}
	if port == "" {
		t.Fatalf("no named container port 8000: %+v", c.Ports)
	}
	probe := func(name string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: none (or not httpGet)", name)
			return
		}
		if p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString(port) {
			t.Errorf("%s: %s on %s, want %s on %s", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), path, port)
		}
	}
	probe("startupProbe", c.StartupProbe, "/ready")
	probe("readinessProbe", c.ReadinessProbe, "/ready")
	probe("livenessProbe", c.LivenessProbe, "/health")
	if c.StartupProbe != nil {
		if budget := secs(c.StartupProbe.PeriodSeconds * c.StartupProbe.FailureThreshold); budget < 3*time.Minute {
			t.Errorf("startup probe gives %s for the first model download, want ≥ 3m", budget)
		}
	}

	// Shutdown: preStop pause, then the server's drain and its in-flight
	// timeout, all within terminationGracePeriodSeconds; a draining pod
	// (/ready 503) is out of the readiness rotation before the drain ends.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatalf("no preStop sleep")
	}
	preStop := secs(int32(c.Lifecycle.PreStop.Sleep.Seconds))
	drain, timeout := duration(t, cfg, "SERVE_SHUTDOWN_DRAIN"), duration(t, cfg, "SERVE_SHUTDOWN_TIMEOUT")
	grace := secs(int32(*spec.TerminationGracePeriodSeconds))
	if need := preStop + drain + timeout; grace < need {
		t.Errorf("terminationGracePeriodSeconds %s < preStop %s + drain %s + timeout %s", grace, preStop, drain, timeout)
	}
	if preStop < 3*time.Second {
		t.Errorf("preStop %s: too short for endpoint removal to reach every gateway", preStop)
	}
	rp := c.ReadinessProbe
	if out := secs(rp.PeriodSeconds*rp.FailureThreshold + rp.TimeoutSeconds); out > drain {
		t.Errorf("readiness takes up to %s to notice a drain of %s", out, drain)
	}

	// Hardening: non-root (the image's user), read-only root filesystem with
	// emptyDirs for the cache and /tmp, no capabilities, RuntimeDefault seccomp.
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil {
		t.Fatal("no security contexts")
	}
	if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod may run as root: %+v", psc)
	} else if uid := imageUser(t); *psc.RunAsUser != uid {
		t.Errorf("runAsUser %d, the serve image's user is %d", *psc.RunAsUser, uid)
	}
	if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccomp %+v, want RuntimeDefault", psc.SeccompProfile)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("root filesystem is writable")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("privilege escalation allowed")
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
		t.Errorf("capabilities %+v, want drop [ALL]", sc.Capabilities)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("a service account token is mounted; the server calls no Kubernetes API")
	}
	emptyDirs := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
			emptyDirs[v.Name] = true
		}
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		if emptyDirs[m.Name] && !m.ReadOnly {
			mounted[m.MountPath] = true
		}
	}
	for _, dir := range []string{cfg["SERVE_CACHE_DIR"], "/tmp"} {
		if !mounted[dir] {
			t.Errorf("%q is not a writable, size-limited emptyDir (the root filesystem is read-only)", dir)
		}
	}

	// Resources: requests and limits; ONNX Runtime threads = the CPU limit.
	lim, req := c.Resources.Limits, c.Resources.Requests
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := lim[r]; !ok {
			t.Errorf("no %s limit", r)
		}
		if _, ok := req[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	cpu := lim[corev1.ResourceCPU]
	if cpu.MilliValue()%1000 != 0 || cpu.Value() < 1 {
		t.Errorf("CPU limit %s: a whole number of cores, so that ONNX Runtime's threads match it", cpu.String())
	}
	threads := envVar(c, "SERVE_INFERENCE_THREADS")
	if threads == nil || threads.ValueFrom == nil || threads.ValueFrom.ResourceFieldRef == nil ||
		threads.ValueFrom.ResourceFieldRef.Resource != "limits.cpu" || threads.ValueFrom.ResourceFieldRef.ContainerName != c.Name ||
		!threads.ValueFrom.ResourceFieldRef.Divisor.Equal(resource.MustParse("1")) {
		t.Errorf("SERVE_INFERENCE_THREADS is not the container's CPU limit (resourceFieldRef limits.cpu, divisor 1): %+v", threads)
	}

	// Topology spread over nodes and zones, selecting the server's pods.
	keys := map[string]bool{}
	for _, tsc := range spec.TopologySpreadConstraints {
		keys[tsc.TopologyKey] = true
		selects(t, "topologySpreadConstraint "+tsc.TopologyKey, tsc.LabelSelector, podLabels(o))
	}
	if !keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"] {
		t.Errorf("topology spread keys %v, want hostname and zone", keys)
	}

	// Secrets by reference only; the MLflow credentials are required.
	secretEnv := []string{"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "SERVE_MLFLOW_WRITE_USERNAME",
		"SERVE_MLFLOW_WRITE_PASSWORD", "SERVE_DECISIONS_URL", "SERVE_ADMIN_TOKEN", "SERVE_WEBHOOK_SECRET"}
	for _, name := range secretEnv {
		e := envVar(c, name)
		if e == nil || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("%s is not taken from a Secret: %+v", name, e)
		}
		if _, inConfig := cfg[name]; inConfig {
			t.Errorf("%s is in the ConfigMap", name)
		}
	}
	// Required: MLflow runs with authentication, and replicas must share
	// one record (without it each would keep its own SQLite file).
	for _, name := range []string{"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "SERVE_DECISIONS_URL"} {
		if e := envVar(c, name); e != nil && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional {
			t.Errorf("%s is optional", name)
		}
	}
	// The tokens file is a read-only mount of a Secret, and not an optional
	// one: the server refuses to start when SERVE_TOKENS_FILE names no file,
	// so a missing Secret must stop the pod where kubelet says which Secret.
	tokens := cfg["SERVE_TOKENS_FILE"]
	mountedSecret := false
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil && m.ReadOnly && strings.HasPrefix(tokens, m.MountPath+"/") {
				mountedSecret = true
				if v.Secret.Optional != nil && *v.Secret.Optional {
					t.Errorf("SERVE_TOKENS_FILE=%q is in the optional Secret %s: without it the server does not start (must be a readable file)", tokens, v.Secret.SecretName)
				}
			}
		}
	}
	if !mountedSecret {
		t.Errorf("SERVE_TOKENS_FILE=%q is not in a read-only Secret volume", tokens)
	}
	// The Go heap's soft limit stays below the container's memory limit.
	soft, err := resource.ParseQuantity(strings.NewReplacer("MiB", "Mi", "GiB", "Gi").Replace(cfg["SERVE_MEMORY_LIMIT"]))
	if mem := lim[corev1.ResourceMemory]; err != nil || soft.Value() > mem.Value()*9/10 {
		t.Errorf("SERVE_MEMORY_LIMIT=%q: not below 90%% of the memory limit %s (%v)", cfg["SERVE_MEMORY_LIMIT"], mem.String(), err)
	}
	for _, e := range c.Env {
		if e.Value != "" && regexp.MustCompile(`TOKEN|SECRET|PASSWORD`).MatchString(e.Name) {
			t.Errorf("%s has a literal value", e.Name)
		}
	}
	if !strings.HasPrefix(cfg["MLFLOW_TRACKING_URI"], "http") {
		t.Errorf("MLFLOW_TRACKING_URI %q", cfg["MLFLOW_TRACKING_URI"])
	}
	if sa := spec.ServiceAccountName; sa != o.serviceAccounts[0].Name {
		t.Errorf("serviceAccountName %q, the ServiceAccount is %q", sa, o.serviceAccounts[0].Name)
	}
}

// configValues is the ConfigMap the container takes its environment from,
// after checking that every key is a setting the server knows.
func configValues(t *testing.T, o *objects, c corev1.Container) map[string]string {
	t.Helper()
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != o.configMaps[0].Name {
		t.Fatalf("envFrom %+v, want the ConfigMap %s", c.EnvFrom, o.configMaps[0].Name)
	}
	known := serverSettings(t)
	for k := range o.configMaps[0].Data {
		if !known[k] {
			t.Errorf("ConfigMap key %s is no setting of the server (serve/config.go)", k)
		}
	}
	for _, e := range c.Env {
		if !known[e.Name] {
			t.Errorf("env %s is no setting of the server (serve/config.go)", e.Name)
		}
	}
	return o.configMaps[0].Data
}

// serverSettings are the environment variables serve/config.go reads.
func serverSettings(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile("../serve/config.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{"((?:SERVE|MLFLOW)_[A-Z_]+)"`).FindAllSubmatch(raw, -1) {
		out[string(m[1])] = true
	}
	if len(out) < 10 {
		t.Fatalf("found only %d settings in serve/config.go", len(out))
	}
	return out
}

// imageUser is the numeric user of docker/serve.Dockerfile's final stage.
func imageUser(t *testing.T) int64 {
	t.Helper()
	raw, err := os.ReadFile("../docker/serve.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^USER (\d+)`).FindAllSubmatch(raw, -1)
	if len(m) == 0 {
		t.Fatal("serve.Dockerfile has no numeric USER")
	}
	var uid int64
	fmt.Sscan(string(m[len(m)-1][1]), &uid)
	return uid
}

func checkService(t *testing.T, o *objects) {
	s := o.services[0]
	selects(t, "Service", &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, podLabels(o))
	c := o.deployments[0].Spec.Template.Spec.Containers[0]
	for _, p := range s.Spec.Ports {
		found := false
		for _, cp := range c.Ports {
			found = found || (p.TargetPort.Type == intstr.String && p.TargetPort.StrVal == cp.Name)
		}
		if !found {
			t.Errorf("Service port %s targets %s, no named port of the container", p.Name, p.TargetPort.String())
		}
	}
}

func checkScaling(t *testing.T, o *objects) {
	d, h, p := o.deployments[0], o.hpas[0], o.pdbs[0]
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v, not the Deployment %s", ref, d.Name)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HPA %v..%d, want a minimum ≥ 2", h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	// The HPA owns the replica count: a Deployment that sets one is scaled
	// back to it by every `kubectl apply` (Kubernetes' HPA documentation
	// says to leave spec.replicas out): a settings change at peak would take
	// 9 replicas down to 3 until the HPA scales up again.
	if d.Spec.Replicas != nil {
		t.Errorf("Deployment sets replicas: %d while the HPA scales it (%v..%d); every apply would reset the count", *d.Spec.Replicas, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) == 0 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA does not follow CPU: %+v", h.Spec.Metrics)
	}
	selects(t, "PodDisruptionBudget", p.Spec.Selector, podLabels(o))
	switch {
	case p.Spec.MaxUnavailable != nil:
		if p.Spec.MaxUnavailable.IntValue() < 1 || p.Spec.MaxUnavailable.IntValue() >= int(*h.Spec.MinReplicas) {
			t.Errorf("PDB maxUnavailable %s: must let a drain proceed and leave one serving", p.Spec.MaxUnavailable.String())
		}
	case p.Spec.MinAvailable != nil:
		if p.Spec.MinAvailable.IntValue() < 1 || p.Spec.MinAvailable.IntValue() >= int(*h.Spec.MinReplicas) {
			t.Errorf("PDB minAvailable %s", p.Spec.MinAvailable.String())
		}
	default:
		t.Errorf("PDB has neither minAvailable nor maxUnavailable")
	}
}

func checkNetworkPolicy(t *testing.T, o *objects) {
	np := o.netpols[0]
	selects(t, "NetworkPolicy", &np.Spec.PodSelector, podLabels(o))
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}
	// Ingress: exactly the gateway, Prometheus and, when the Deployment sets
	// SERVE_WEBHOOK_SECRET, MLflow (its webhook deliveries to /hooks/mlflow),
	// each a namespace AND a pod selector, on the HTTP port only.
	peers := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("an ingress rule opens every port")
		}
		for _, port := range rule.Ports {
			if port.Port == nil || (port.Port.String() != "http" && port.Port.String() != "8000") {
				t.Errorf("ingress on port %v", port.Port)
			}
		}
		if len(rule.From) == 0 {
			t.Errorf("an ingress rule admits everyone")
		}
		for _, from := range rule.From {
			if from.IPBlock != nil || from.NamespaceSelector == nil || from.PodSelector == nil || len(from.PodSelector.MatchLabels) == 0 {
				t.Errorf("ingress peer %+v: want a namespace and pod selector", from)
				continue
			}
			peers[from.PodSelector.MatchLabels["app.kubernetes.io/name"]] = true
		}
	}
	want := map[string]bool{"gateway": true, "prometheus": true}
	if envVar(o.deployments[0].Spec.Template.Spec.Containers[0], "SERVE_WEBHOOK_SECRET") != nil {
		want["mlflow"] = true
	}
	if fmt.Sprint(peers) != fmt.Sprint(want) {
		t.Errorf("ingress from %v, want %v", peers, want)
	}
	// Egress: MLflow, PostgreSQL and DNS, nothing else.
	ports := map[string]bool{}
	for _, rule := range np.Spec.Egress {
		if len(rule.To) == 0 || len(rule.Ports) == 0 {
			t.Errorf("an egress rule open to everything: %+v", rule)
		}
		for _, to := range rule.To {
			if to.IPBlock != nil {
				t.Errorf("egress to an IP block %+v", to.IPBlock)
			}
		}
		for _, port := range rule.Ports {
			ports[fmt.Sprintf("%s/%s", *port.Protocol, port.Port.String())] = true
		}
	}
	wantPorts := map[string]bool{"TCP/5000": true, "TCP/5432": true, "UDP/53": true, "TCP/53": true}
	if fmt.Sprint(ports) != fmt.Sprint(wantPorts) {
		t.Errorf("egress ports %v, want %v (MLflow, PostgreSQL, DNS)", ports, wantPorts)
	}
	if u := o.configMaps[0].Data["MLFLOW_TRACKING_URI"]; !strings.HasSuffix(u, ":5000") {
		t.Errorf("MLFLOW_TRACKING_URI %q is not on the port the NetworkPolicy opens (5000)", u)
	}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func secs(n int32) time.Duration { return time.Duration(n) * time.Second }

func duration(t *testing.T, cfg map[string]string, key string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(cfg[key])
	if err != nil {
		t.Fatalf("ConfigMap %s=%q: %v", key, cfg[key], err)
	}
	return d
}

// TestRecordConnectionBudget: every replica opens up to
// recordConnections(t) connections to the one PostgreSQL, and a rolling
// update runs maxSurge more than the HPA's maximum; deploy/README must ask
// the bank for a max_connections that holds them all (PostgreSQL's default,
// 100, does not hold production's), or commits fail with "too many clients"
// and every replica's /ready turns 503 exactly when the HPA has scaled up.
func TestRecordConnectionBudget(t *testing.T) {
	perReplica := recordConnections(t)
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.ReplaceAll(string(raw), "\n", " ") // a sentence may wrap anywhere
	if m := regexp.MustCompile(`max_connections.*?(\d+) connections a replica`).FindStringSubmatch(readme); m == nil || m[1] != fmt.Sprint(perReplica) {
		t.Errorf("deploy/README does not say each replica needs %d PostgreSQL connections (max_connections): %v", perReplica, m)
	}
	for _, dir := range overlays[1:] {
		o := render(t, dir)
		name := filepath.Base(dir)
		need := (int(o.hpas[0].Spec.MaxReplicas) + o.deployments[0].Spec.Strategy.RollingUpdate.MaxSurge.IntValue()) * perReplica
		m := regexp.MustCompile(`(\d+) for ` + name).FindStringSubmatch(readme)
		if m == nil {
			t.Errorf("deploy/README names no max_connections for %s (need %d)", name, need)
			continue
		}
		var stated int
		fmt.Sscan(m[1], &stated)
		if stated < need {
			t.Errorf("deploy/README asks max_connections %d for %s; %d replicas × %d need %d", stated, name, need/perReplica, perReplica, need)
		}
	}
}

// recordConnections is how many PostgreSQL connections one replica may
// open: serve/record's committing pool (its floor in OpenPostgres) and its
// readers.
func recordConnections(t *testing.T) int {
	t.Helper()
	read := func(path, pattern string) int {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(pattern).FindSubmatch(raw)
		if m == nil {
			t.Fatalf("%s: no %s", path, pattern)
		}
		var n int
		fmt.Sscan(string(m[1]), &n)
		return n
	}
	return read("../serve/record/postgres.go", `cfg\.MaxConns < (\d+)`) + read("../serve/record/record.go", `const readers = (\d+)`)
}
