complete -c cowrepair -s i -l input -d 'The damaged store (image file or block device); opened read-only' -r -F
complete -c cowrepair -s o -l output -d 'The new store: an image file (created sparse) or an empty block device' -r -F
complete -c cowrepair -l backup -d 'Where --in-place copies the input first (must be new or empty); to finish an interrupted --in-place repair, the backup it made' -r -F
complete -c cowrepair -s s -l size -d 'Size of a new output image (4k, 64M, 1G, 8s...); the input\'s size by default' -r
complete -c cowrepair -l origin-size -d 'The origin\'s size (bytes, or 64M, 1G, 8s...), when the device is not at hand' -r
complete -c cowrepair -l kind -d 'persistent, legacy (also hold the output to the pre-2.6.29 limits), shared, or clone; by default the header\'s magic (or a dm-clone superblock) decides' -r -f -a "persistent\t'The kernel\'s "SnAp" v1 store (dm-snapshot `P`)'
legacy\t'The same bytes, held to the pre-2.6.29 limits and made safe to reload there'
shared\t'The multi-snapshot shared store'
clone\t'dm-clone metadata'"
complete -c cowrepair -l journal-chunks -d 'Shared stores: journal chunks, overriding the header\'s' -r
complete -c cowrepair -l snapshots -d 'Shared stores: the snapshot ids that exist (0,3-5,63), overriding the header\'s' -r
complete -c cowrepair -l snapmask -d 'Shared stores: the snapmask (bit s = snapshot s; 0x... or decimal), overriding the header\'s' -r
complete -c cowrepair -l source -d 'Clone metadata: the clone\'s source device; with --dest, each region whose state is lost is decided from the data (destination equal to the source or holding other data: hydrated; all zero where the source is not: unhydrated)' -r -F
complete -c cowrepair -l dest -d 'Clone metadata: the clone\'s destination device (with --source)' -r -F
complete -c cowrepair -l lost-regions -d 'Clone metadata: the state every region whose state is lost gets, when not decided from the data (required when regions are lost)' -r -f -a "hydrated\t'Hydrated: the kernel reads them from the destination'
unhydrated\t'Not hydrated: the kernel copies them again from the source'"
complete -c cowrepair -l region-size -d 'Clone metadata: the region size (4k ... 1G, a power of two; the table\'s region_size), replacing the superblock\'s (needed when those are unusable)' -r
complete -c cowrepair -l target-size -d 'Clone metadata: the target size (512-byte multiple), replacing the superblock\'s; when those are unusable, the size of --source by default' -r
complete -c cowrepair -l format -d 'Report format' -r -f -a "text\t'Plain lines: one per dropped record (and lost range), then a summary'
table\t'The dropped records (and per-snapshot counts) as tables, then the summary'
json\t'One JSON document (format_version 1)'"
complete -c cowrepair -l chunk-size -d 'Chunk size to read the store with, overriding the header (4k, 8s...)' -r
complete -c cowrepair -l origin -d 'The origin device: records past its end are dropped, and the table line names it' -r -F
complete -c cowrepair -l in-place -d 'Rebuild the input itself, from a verified copy in --backup'
complete -c cowrepair -s n -l dry-run -d 'Analyse and report only; write nothing'
complete -c cowrepair -l full-scan -d 'Shared stores: when the tree is damaged, also look for leaves in chunks the bitmap marks free (stale leaves the engine freed look like this too)'
complete -c cowrepair -l mark-valid -d 'Mark the output valid even if the input was invalidated (its data may be incomplete)'
complete -c cowrepair -l invalidate-on-loss -d 'When records are lost, write the output marked invalid (valid=0): the kernel (or engine) then refuses the snapshot instead of reading the origin where the records were. No data rather than wrong data'
complete -c cowrepair -l kernel-areas-only -d 'Salvage only the areas the kernel reads (leave out records beyond them, e.g. when the device held an earlier snapshot)'
complete -c cowrepair -s f -l force -d 'Overwrite an existing output (or backup) file, or a device holding data; with --kind, also repair an input that holds another kind\'s signature'
complete -c cowrepair -s q -l quiet -d 'No progress bars and no text report; JSON is still printed'
complete -c cowrepair -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cowrepair -s V -l version -d 'Print version'
