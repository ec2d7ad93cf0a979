// Package image is a node's OCI image store: it pulls images from
// registries, imports image archives, unpacks layers once for overlayfs and
// collects garbage.
//
// # On-disk layout
//
// Everything lives below Config.Root (e.g. <data dir>/images):
//
//	index.json                    the index: names -> manifest digests, image records
//	                              (config digest, layer diffIDs, pinned), layer sizes,
//	                              imported archive digests; rewritten atomically
//	                              (temp file, fsync, rename, fsync of the directory)
//	lock                          flock held by the open Store
//	blobs/sha256/<hex>            manifests and image configs, by digest
//	layers/sha256/<hex>/          one unpacked layer per uncompressed digest (diffID),
//	                              the directory overlayfs uses as a lower layer;
//	                              shared by every image that has the layer
//	tmp/                          unpacks in progress and removals; emptied on open
//
// Compressed layer blobs are not kept: an unpacked layer is verified
// against its diffID and its compressed digest while it is read, and
// keeping the blob as well would double the disk use.
//
// A layer is unpacked into a fresh directory in tmp/ and renamed into
// layers/ only when it is complete, verified and synced, so a layer
// directory either exists whole or not at all; a crash or a cancelled
// pull leaves only tmp/ entries, which the next NewStore removes.
//
// # Unpacking
//
// Layer tar streams are untrusted. Every entry is created relative to a
// file descriptor of the layer directory with openat2(RESOLVE_IN_ROOT):
// "..", absolute names and symbolic links inside the layer cannot reach
// outside it. Entries with ".." components are refused, hard links must
// point inside the layer, device nodes are created only as root, and
// overlay's own extended attributes are never taken from a layer. OCI
// whiteouts become overlayfs whiteouts: ".wh.NAME" a character device
// 0/0 named NAME, ".wh..wh..opq" the attribute trusted.overlay.opaque=y
// on its directory (both need root). Owners (as root), modes, times and
// extended attributes (user.*, and as root security.capability and
// trusted.*) are kept.
//
// # Concurrency
//
// A Store is safe for concurrent use. Pulls of one reference share one
// download; layers shared by images being pulled at once are fetched and
// unpacked once; at most Config.MaxConcurrentLayerUnpacks layers are
// fetched and unpacked at a time. GC excludes pulls and imports while it
// runs.
//
// # Credentials
//
// A pull authenticates with the store's keychain (by default the docker
// config.json of $DOCKER_CONFIG or ~/.docker). PullWithKeyring adds
// credentials held in memory, such as those of a pod's image pull secrets:
// a Keyring matches them to the image's registry as the kubelet does, and
// they are tried in turn before the store's own. Only pulls with the same
// credentials share a download.
package image
