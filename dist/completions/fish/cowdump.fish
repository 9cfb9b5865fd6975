complete -c cowdump -l format -d 'Output format' -r -f -a "yaml\t'YAML, one exception per line'
json\t'JSON, one exception per line'
table\t'Tables for people'"
complete -c cowdump -s o -l output -d 'Write the output to FILE instead of stdout' -r -F
complete -c cowdump -l snapshot -d 'Shared store: only the records snapshot ID sees, as origin_chunk and cow_chunk' -r
complete -c cowdump -l hex -d 'Print chunk CHUNK of the device in hex, and nothing else' -r
complete -c cowdump -l kind -d 'Insist on a store kind (legacy labels a SnAp store as legacy)' -r -f -a "persistent\t'The kernel\'s "SnAp" v1 store (dm-snapshot `P`)'
legacy\t'The same bytes, held to the pre-2.6.29 limits'
shared\t'The multi-snapshot shared store'
clone\t'dm-clone metadata (the hydration bitset of a dm-clone target)'"
complete -c cowdump -l runs -d 'Add the kernel\'s in-memory runs of consecutive chunks (persistent, legacy)'
complete -c cowdump -l tree -d 'Shared store: every node and leaf of the B-tree in walk order'
complete -c cowdump -l bitmap -d 'Shared store: every chunk of the device by class, as runs'
complete -c cowdump -l journal -d 'Shared store: the journal\'s superblock and every transaction in its log'
complete -c cowdump -l blocks -d 'dm-clone metadata: every metadata block reached (number, type, checksum verdict, the block referencing it, what it covers) and the bad ones'
complete -c cowdump -s f -l force -d 'Overwrite an existing, non-empty output file'
complete -c cowdump -s q -l quiet -d 'No warnings and no progress on stderr'
complete -c cowdump -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cowdump -s V -l version -d 'Print version'
