"""Redis sources: RDB snapshots streamed into the vault, restores into throwaway or given servers,
and checks of a restored copy (keys per database, sampled values, whole-dataset digests)."""
