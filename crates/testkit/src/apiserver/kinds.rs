//! The resources the fake serves, with what the real API server knows of
//! each: scope, status subresource, atomic fields.

#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short: &'static [&'static str],
    /// Writes to the object itself leave `status` alone; `/status` writes only it.
    pub status: bool,
    /// JSON pointers of fields that are replaced whole (`x-kubernetes-map-type: atomic`).
    pub atomic: &'static [&'static str],
}

pub const KINDS: &[Kind] = &[
    Kind {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
        status: true,
        atomic: &[],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
        short: &["sa"],
        status: false,
        atomic: &[],
    },
    Kind {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
        status: false,
        atomic: &[],
    },
    Kind {
        group: "kubeflow.org",
        version: "v1",
        plural: "profiles",
        kind: "Profile",
        namespaced: false,
        short: &[],
        status: true,
        // As the Kubeflow CRD declares them.
        atomic: &["/spec/owner", "/spec/resourceQuotaSpec/scopeSelector"],
    },
    Kind {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        short: &[],
        status: false,
        atomic: &[],
    },
];

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }
}

pub fn find(plural: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.plural == plural)
}

pub fn kind_of(plural: &str) -> &'static Kind {
    find(plural).expect("invariant: a served kind")
}
