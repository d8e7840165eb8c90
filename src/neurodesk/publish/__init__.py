"""Publishing images from the local store: to OCI registries and to CVMFS-layout trees."""
