complete -c cowcheck -l format -d 'Report format' -r -f -a "text\t'One line per finding, then a summary line'
json\t'One JSON document (format_version 1)'"
complete -c cowcheck -l origin-size -d 'The origin\'s size (bytes, or with a suffix: 64M, 1G, 8s), to check old chunks' -r
complete -c cowcheck -l origin -d 'The origin device, to take its size from (clone: the source device)' -r -F
complete -c cowcheck -l kind -d 'Insist on a store kind; legacy also checks the pre-2.6.29 limits' -r -f -a "persistent\t'The kernel\'s "SnAp" v1 store (dm-snapshot `P`)'
legacy\t'The same bytes, held to the pre-2.6.29 limits'
shared\t'The multi-snapshot shared store'
clone\t'dm-clone metadata (the hydration bitset of a dm-clone target)'"
complete -c cowcheck -l chunk-size -d 'Chunk size to read the areas with when the header\'s is unusable (4k, 8s...)' -r
complete -c cowcheck -l super-block-only -d 'Check only the header (chunk 0)'
complete -c cowcheck -l ignore-non-fatal -d 'Exit 0 when only warnings (non-fatal findings) were found; also spelt --ignore-non-fatal-errors, as thin_check has it'
complete -c cowcheck -s q -l quiet -d 'Print nothing; only the exit code tells'
complete -c cowcheck -s h -l help -d 'Print help (see more with \'--help\')'
complete -c cowcheck -s V -l version -d 'Print version'
