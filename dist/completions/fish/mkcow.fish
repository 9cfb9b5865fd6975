complete -c mkcow -l size -d 'Create the image file, or extend it (sparse), to this size (64M, 1G...)' -r
complete -c mkcow -l journal-size -d 'Shared stores: the journal size (16M, 0...) [default: 128 MiB, at most 1/8 of the device]' -r
complete -c mkcow -l snapshots -d 'Shared stores: create snapshots 0..N-1 right away (at most 64)' -r
complete -c mkcow -l region-size -d 'dm-clone: the region size, a power of two from 4k to 1G (the table\'s region_size)' -r
complete -c mkcow -l target-size -d 'dm-clone: the size of the target (source and destination), in bytes (512-byte multiple)' -r
complete -c mkcow -s i -l from-dump -d 'Restore the metadata from a cowdump YAML or JSON dump (\'-\' for stdin); also spelt --input, as thin_restore has it' -r -F
complete -c mkcow -l kind -d 'Store kind to write [default: persistent; with --from-dump: the dump\'s kind]' -r -f -a "persistent\t'The kernel\'s "SnAp" v1 store (dm-snapshot `P`)'
legacy\t'The same bytes, held to the pre-2.6.29 limits'
shared\t'The multi-snapshot shared store'
clone\t'dm-clone metadata (the hydration bitset of a dm-clone target)'"
complete -c mkcow -l chunk-size -d 'Chunk size: a power of two of at least 512 bytes (4k, 64k, 8s...) [default: 4k]' -r
complete -c mkcow -l origin -d 'The origin device, to fill in its path and size in the table line' -r -F
complete -c mkcow -s f -l force -d 'Overwrite a target that holds a signature or a non-zero first chunk (mkcow says what)'
complete -c mkcow -s q -l quiet -d 'Print nothing but the table line'
complete -c mkcow -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mkcow -s V -l version -d 'Print version'
