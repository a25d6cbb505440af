# bash completion for randomctl(1)                            -*- shell-script -*-
#
# Completes commands, options, and the ids of the jobs randomd knows (asked
# quietly with 'randomctl --json jobs' on the same bus as the command line).

# Uses $words and $cword of _randomctl (the words of the line, rejoined at
# "=" and ":" so that an address such as unix:path=/run/x stays one word).
_randomctl_job_ids()
{
    local -a bus=()
    local i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --system | --session) bus+=("${words[i]}") ;;
            --address) bus+=(--address "${words[i + 1]}") ;;
            --address=*) bus+=("${words[i]}") ;;
        esac
    done
    randomctl "${bus[@]}" --json=short --no-ask-password --timeout 2 jobs 2>/dev/null |
        grep -o '"id":[0-9]*' | grep -o '[0-9][0-9]*'
}

_randomctl()
{
    local cur prev words cword
    COMPREPLY=()
    if declare -F _init_completion >/dev/null; then
        _init_completion -n =: || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="quick bytes slow jobs show wait cancel cancel-all status monitor set-interval
                    reload"
    local global="--system --session --address --json --json= --no-legend --quiet --no-pager
                  --no-ask-password --timeout --help"

    if [[ $cur == --json=* ]]; then
        mapfile -t COMPREPLY < <(compgen -P --json= -W "short pretty off" -- "${cur#--json=}")
        return
    fi

    case $prev in
        --address | --timeout)
            return
            ;;
    esac

    local command="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --address | --timeout) ((i++)) ;;
            -*) ;;
            *)
                command=${words[i]}
                break
                ;;
        esac
    done

    if [[ -z $command ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$global --version" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return
    fi

    local options=$global
    case $command in
        bytes) options+=" --hex --base64 --raw" ;;
        slow) options+=" --no-wait" ;;
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
        return
    fi
    case $command in
        show | wait | cancel)
            mapfile -t COMPREPLY < <(compgen -W "$(_randomctl_job_ids)" -- "$cur")
            ;;
    esac
} &&
    complete -F _randomctl randomctl

# ex: filetype=sh
