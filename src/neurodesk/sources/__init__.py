"""Where images come from: the local store, CVMFS-layout trees, OCI registries, HTTP servers."""
