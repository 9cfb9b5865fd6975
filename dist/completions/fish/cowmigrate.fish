complete -c cowmigrate -s i -l input -d 'The store to migrate (image file or block device); opened read-only. Several classic stores of one origin with --to shared' -r -F
complete -c cowmigrate -s o -l output -d 'The new store: an image file (created sparse) or an empty block device; with --to raw the image file, or - for stdout' -r -F
complete -c cowmigrate -l chunk-size -d 'The new chunk size (a power of two: 4k, 8s...)' -r
complete -c cowmigrate -l region-size -d 'dm-clone metadata: the new region size, a power of two from 4k to 1G (the kernel\'s limits); the target size stays' -r
complete -c cowmigrate -l to -d 'The kind to convert to, or raw: the snapshot\'s data as an image' -r -f -a "persistent\t'The kernel\'s "SnAp" v1 store as current kernels use it'
legacy\t'The same bytes, held to the pre-2.6.29 limits and made safe to reload there'
shared\t'One store for up to 64 snapshots, each copied chunk stored once'
raw\t'One snapshot\'s data: its full logical image (origin plus exceptions)'"
complete -c cowmigrate -l origin -d 'The origin device: needed for a larger chunk size; fills the table line' -r -F
complete -c cowmigrate -l kind -d 'The kind the input is (found from its magic; legacy only changes labels)' -r -f -a "persistent\t'The kernel\'s "SnAp" v1 store as current kernels use it'
legacy\t'The same bytes, held to the pre-2.6.29 limits and made safe to reload there'
shared\t'One store for up to 64 snapshots, each copied chunk stored once'"
complete -c cowmigrate -l snapshot -d 'The snapshot of a shared input to export (--to persistent|legacy|raw) or merge (--merge)' -r
complete -c cowmigrate -l ids -d 'With --to shared: the snapshot id of each input, in order (5,6,9); 0,1,2... by default' -r
complete -c cowmigrate -l journal-size -d 'A new shared store\'s journal (16M, 0...) [default: an import takes 128 MiB, at most 1/8 of the device; a re-chunk keeps the input\'s]' -r
complete -c cowmigrate -s s -l size -d 'Size of a new output image (4k, 64M, 1G, 8s...) [default: what the store needs plus a quarter (at least 64 chunks) to grow, and at least the input\'s size]' -r
complete -c cowmigrate -l format -d 'Report format' -r -f -a "text\t'Plain lines'
json\t'One JSON document (format_version 1)'"
complete -c cowmigrate -l merge -d 'Merge the snapshot into --origin offline (a rollback): the origin then reads as the snapshot; the store is emptied (a shared store loses that snapshot only). Rerun it to finish a merge a crash interrupted'
complete -c cowmigrate -s f -l force -d 'Overwrite an existing output file, or a device holding data'
complete -c cowmigrate -s q -l quiet -d 'No progress bar and no text report; JSON is still printed'
complete -c cowmigrate -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cowmigrate -s V -l version -d 'Print version'
