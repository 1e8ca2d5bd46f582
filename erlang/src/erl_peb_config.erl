%% Configuration of the session server, read once from the `erl_peb' application environment
%% (`-erl_peb backend mnesia' on the command line, a sys.config, or erl_peb:start_server/1).
-module(erl_peb_config).

-export([load/0, keys/0, default/1, validate/2]).

-export_type([config/0]).

-type config() :: #{
    backend := ets | mnesia,
    copies := ram_copies | disc_copies,
    server_name := atom(),
    table := atom(),
    lock_table := atom(),
    default_ttl := pos_integer(),
    sweep_interval := pos_integer() | infinity,
    sweep_batch := pos_integer(),
    max_page := pos_integer(),
    majority := boolean() | undefined,
    join := [node()],
    data_dir := file:filename() | undefined,
    wait_for_tables := non_neg_integer(),
    workers := pos_integer(),
    disc_sync := boolean()
}.

%% Every key, with its default.
-spec keys() -> [atom()].
keys() ->
    [backend, copies, server_name, table, lock_table, default_ttl, sweep_interval, sweep_batch,
     max_page, majority, join, data_dir, wait_for_tables, workers, disc_sync].

-spec default(atom()) -> term().
default(backend) -> ets;
default(copies) -> ram_copies;
default(server_name) -> erl_peb_sessions;
default(table) -> erl_peb_sessions;
default(lock_table) -> erl_peb_session_locks;
default(default_ttl) -> 86400000;
default(sweep_interval) -> 5000;
%% auto: 100 for ETS, whose server deletes each step itself and answers calls only between steps;
%% 1000 for Mnesia, whose steps are transactions run by the sweeper, not the server.
default(sweep_batch) -> auto;
default(max_page) -> 10000;
%% undefined: keep the Mnesia table's own setting (false when this node creates the table).
default(majority) -> undefined;
default(join) -> [];
default(data_dir) -> undefined;
default(wait_for_tables) -> 30000;
default(workers) -> 8;
default(disc_sync) -> true.

%% Reads and checks the whole configuration. An unknown value is an error naming its key, so a
%% typo on the command line stops the start with a clear reason instead of being ignored.
-spec load() -> {ok, config()} | {error, {bad_config, atom(), term()}}.
load() ->
    load(keys(), #{}).

load([], #{sweep_batch := auto, backend := Backend} = Acc) ->
    {ok, Acc#{sweep_batch := case Backend of ets -> 100; mnesia -> 1000 end}};
load([], Acc) ->
    {ok, Acc};
load([Key | Rest], Acc) ->
    Raw = application:get_env(erl_peb, Key, default(Key)),
    case validate(Key, Raw) of
        {ok, Value} -> load(Rest, Acc#{Key => Value});
        error -> {error, {bad_config, Key, Raw}}
    end.

-spec validate(atom(), term()) -> {ok, term()} | error.
validate(backend, V) when V =:= ets; V =:= mnesia -> {ok, V};
validate(copies, V) when V =:= ram_copies; V =:= disc_copies -> {ok, V};
validate(server_name, V) when is_atom(V), V =/= undefined -> {ok, V};
validate(table, V) when is_atom(V), V =/= undefined -> {ok, V};
validate(lock_table, V) when is_atom(V), V =/= undefined -> {ok, V};
validate(default_ttl, V) when is_integer(V), V > 0 -> {ok, V};
validate(sweep_interval, infinity) -> {ok, infinity};
validate(sweep_interval, V) when is_integer(V), V > 0, V =< 4294967295 -> {ok, V};
validate(sweep_batch, auto) -> {ok, auto};
validate(sweep_batch, V) when is_integer(V), V > 0 -> {ok, V};
validate(max_page, V) when is_integer(V), V > 0 -> {ok, V};
validate(majority, V) when is_boolean(V); V =:= undefined -> {ok, V};
validate(join, V) when is_atom(V), V =/= undefined -> {ok, [V]};
validate(join, undefined) -> {ok, []};
validate(join, V) when is_list(V) ->
    case lists:all(fun(N) -> is_atom(N) andalso N =/= undefined end, V) of
        true -> {ok, V};
        false -> error
    end;
validate(data_dir, undefined) -> {ok, undefined};
validate(data_dir, V) when is_binary(V) -> validate(data_dir, unicode:characters_to_list(V));
validate(data_dir, V) when is_list(V) ->
    case io_lib:char_list(V) andalso V =/= [] of
        true -> {ok, V};
        false -> error
    end;
validate(wait_for_tables, V) when is_integer(V), V >= 0 -> {ok, V};
validate(workers, V) when is_integer(V), V > 0, V =< 1024 -> {ok, V};
validate(disc_sync, V) when is_boolean(V) -> {ok, V};
validate(_, _) -> error.
