package bpf

// Tier names a set of hook points. See doc.go.
//
// The names build on every platform, so that the command line can list
// them. What each tier is, and how one is chosen and loaded, is in
// tiers.go, which builds only on linux/amd64 and linux/arm64, where the
// objects are.
type Tier string

// Tiers, best first.
const (
	TierFentry Tier = "fentry"
	TierKprobe Tier = "kprobe"
	TierCgroup Tier = "cgroup"
)

// Tiers lists every tier, best first.
var Tiers = []Tier{TierFentry, TierKprobe, TierCgroup}

// TierAuto asks for the best tier that runs on this kernel (Loader.Open).
const TierAuto Tier = "auto"
