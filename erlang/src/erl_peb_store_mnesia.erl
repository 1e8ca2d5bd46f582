%% Mnesia backend: sessions replicated on the nodes of a cluster, in RAM (ram_copies) or logged
%% to disc (disc_copies).
%%
%% Writes are `mnesia:sync_transaction/1': the call returns once every live replica has
%% committed, so an acknowledged write survives the loss of any node but the last, and a table
%% with the `majority' property refuses writes on the minority side of a partition. Mnesia's
%% transaction log is buffered by disk_log and reaches the operating system only later, so with
%% disc_copies (and `disc_sync', the default) a write is acknowledged only after the log has been
%% flushed and synced: a group commit, one sync for all the writes that arrived meanwhile.
%%
%% Transactions can wait on other nodes, so the server runs them in its worker processes
%% (concurrency() =:= keyed) and goes on answering reads, which are dirty reads of the local copy.
-module(erl_peb_store_mnesia).

-behaviour(erl_peb_store).

-include("erl_peb.hrl").

-export([setup/1, init/1, concurrency/0, terminate/1,
         lookup/2, expires_at/2, next/2, count/2, stored/1, scan/4,
         put/6, touch/4, delete/2, clear/1, delete_matching/3, lock_acquire/6, lock_release/3,
         sweeps_here/1, status/1, handle_info/2, join/3]).

-type ref() :: #{table := atom(), locks := atom(), copies := ram_copies | disc_copies,
                 syncer := pid() | undefined}.

-spec setup(erl_peb_config:config()) -> ok.
setup(_Config) -> ok.

-spec init(erl_peb_config:config()) -> {ok, ref()} | {error, term()}.
init(#{join := Join} = Config) ->
    try
        ok = data_dir(Config),
        ok = start_mnesia(),
        ok = subscribe_system(),
        ok = join_any(Join, Config, []),
        ok = tables(Config),
        {ok, ref(Config)}
    catch
        throw:{error, Reason} -> {error, Reason}
    end.

ref(#{table := T, lock_table := L, copies := Copies, disc_sync := Sync}) ->
    Syncer = case Copies =:= disc_copies andalso Sync of
                 true -> spawn_link(fun syncer/0);
                 false -> undefined
             end,
    #{table => T, locks => L, copies => Copies, syncer => Syncer}.

-spec concurrency() -> keyed.
concurrency() -> keyed.

-spec terminate(ref()) -> ok.
terminate(#{syncer := Syncer, locks := L}) ->
    _ = mnesia:unsubscribe({table, L, simple}),
    _ = mnesia:unsubscribe(system),
    _ = is_pid(Syncer) andalso exit(Syncer, shutdown),
    ok.

%% --- starting, joining, tables ---------------------------------------------------------------

data_dir(#{data_dir := undefined}) ->
    ok;
data_dir(#{data_dir := Dir0}) ->
    Dir = filename:absname(Dir0),
    case mnesia:system_info(is_running) of
        no ->
            ok = filelib:ensure_dir(filename:join(Dir, "x")),
            _ = application:load(mnesia),
            application:set_env(mnesia, dir, Dir);
        _ ->
            case filename:absname(mnesia:system_info(directory)) of
                Dir -> ok;
                Other -> throw({error, {mnesia_already_running, {dir, Other}}})
            end
    end.

start_mnesia() ->
    case application:ensure_all_started(mnesia) of
        {ok, _} -> ok;
        {error, Reason} -> throw({error, {mnesia, Reason}})
    end.

subscribe_system() ->
    _ = mnesia:unsubscribe(system),
    {ok, _} = mnesia:subscribe(system),
    ok.

%% Once the lock table is loaded here: its events say when a lease taken on another node ends.
subscribe_locks(#{lock_table := L}) ->
    _ = mnesia:unsubscribe({table, L, simple}),
    {ok, _} = mnesia:subscribe({table, L, simple}),
    ok.

join_any([], _Config, []) ->
    ok;
join_any([], _Config, Failures) ->
    throw({error, {join_failed, lists:reverse(Failures)}});
join_any([Node | Rest], Config, Failures) ->
    try do_join(Node, Config) of
        ok -> ok
    catch
        throw:{error, Reason} -> join_any(Rest, Config, [{Node, Reason} | Failures])
    end.

%% Adds this node to Node's cluster. A node that is already a member (a disc node restarting)
%% has nothing to do: Mnesia reconnects to the nodes its schema names. Otherwise this node's
%% own copies of the session tables are dropped (the cluster's sessions replace them) and the
%% schemas are merged; a disc schema of a node alone, which Mnesia cannot merge, is recreated.
do_join(Node, Config) when Node =:= node() ->
    tables(Config);
do_join(Node, Config) ->
    case net_kernel:connect_node(Node) of
        true -> ok;
        _ -> throw({error, {unreachable, Node}})
    end,
    case lists:member(Node, mnesia:system_info(db_nodes)) of
        true ->
            ok;
        false ->
            ok = drop_own_tables(Config),
            case merge(Node) of
                ok ->
                    ok;
                {error, Reason} ->
                    case only_member_with_disc_schema() of
                        true ->
                            logger:notice("erl_peb: recreating this node's own Mnesia schema to "
                                          "join ~p (~p)", [Node, reason_kind(Reason)]),
                            ok = reset_schema(Config),
                            case merge(Node) of
                                ok -> ok;
                                {error, R} -> throw({error, R})
                            end;
                        false ->
                            throw({error, Reason})
                    end
            end
    end.

reason_kind(Reason) when is_tuple(Reason), tuple_size(Reason) > 0 -> element(1, Reason);
reason_kind(Reason) -> Reason.

merge(Node) ->
    case mnesia:change_config(extra_db_nodes, [Node]) of
        {ok, [Node]} -> ok;
        {ok, []} -> {error, {mnesia_not_running, Node}};
        {error, Reason} -> {error, Reason}
    end.

drop_own_tables(#{table := T, lock_table := L}) ->
    Tables = mnesia:system_info(tables),
    lists:foreach(
      fun(Tab) ->
              case lists:member(Tab, Tables) andalso mnesia:table_info(Tab, all_nodes) =:= [node()] of
                  true -> {atomic, ok} = mnesia:delete_table(Tab);
                  false -> ok
              end
      end, [T, L]).

only_member_with_disc_schema() ->
    mnesia:system_info(db_nodes) =:= [node()]
        andalso mnesia:table_info(schema, storage_type) =:= disc_copies
        andalso mnesia:system_info(local_tables) =:= [schema].

reset_schema(_Config) ->
    stopped = mnesia:stop(),
    ok = mnesia:delete_schema([node()]),
    ok = start_mnesia(),
    subscribe_system().

tables(#{table := T, lock_table := L, copies := Copies, majority := Majority,
         wait_for_tables := Wait} = Config) ->
    ok = schema_storage(Copies),
    ok = table(T, Copies, Majority,
               [{type, ordered_set}, {record_name, erl_peb_session},
                {attributes, record_info(fields, erl_peb_session)}]),
    ok = table(L, ram_copies, Majority,
               [{type, set}, {record_name, erl_peb_lock},
                {attributes, record_info(fields, erl_peb_lock)}]),
    case mnesia:wait_for_tables([T, L], Wait) of
        ok -> subscribe_locks(Config);
        {timeout, Tabs} -> throw({error, {tables_not_loaded, Tabs}});
        {error, Reason} -> throw({error, Reason})
    end.

schema_storage(ram_copies) ->
    ok;
schema_storage(disc_copies) ->
    case mnesia:table_info(schema, storage_type) of
        disc_copies -> ok;
        _ -> atomic(mnesia:change_table_copy_type(schema, node(), disc_copies))
    end.

table(Tab, Copies, Majority, Def) ->
    case lists:member(Tab, mnesia:system_info(tables)) of
        false ->
            case mnesia:create_table(Tab, [{Copies, [node()]}, {majority, Majority =:= true} | Def]) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Tab}} -> table(Tab, Copies, Majority, Def);
                {aborted, Reason} -> throw({error, {create_table, Tab, Reason}})
            end;
        true ->
            {attributes, Attrs} = lists:keyfind(attributes, 1, Def),
            case mnesia:table_info(Tab, attributes) of
                Attrs -> ok;
                Other -> throw({error, {incompatible_table, Tab, Other}})
            end,
            case mnesia:add_table_copy(Tab, node(), Copies) of
                {atomic, ok} -> ok;
                {aborted, {already_exists, Tab, _}} -> ok;
                {aborted, Reason} -> throw({error, {add_table_copy, Tab, Reason}})
            end,
            case mnesia:table_info(Tab, storage_type) of
                Copies -> ok;
                _ -> atomic(mnesia:change_table_copy_type(Tab, node(), Copies))
            end,
            case Majority =:= undefined orelse mnesia:table_info(Tab, majority) =:= Majority of
                true -> ok;
                false -> atomic(mnesia:change_table_majority(Tab, Majority))
            end
    end.

atomic({atomic, ok}) -> ok;
atomic({aborted, Reason}) -> throw({error, Reason}).

%% --- reads -----------------------------------------------------------------------------------

-spec lookup(ref(), binary()) -> #erl_peb_session{} | none.
lookup(#{table := T}, Id) ->
    case mnesia:dirty_read(T, Id) of
        [S] -> S;
        [] -> none
    end.

-spec expires_at(ref(), binary()) -> erl_peb_store:expires() | none.
expires_at(#{table := T}, Id) ->
    case mnesia:dirty_select(T, [{#erl_peb_session{id = Id, expires_at = '$1', _ = '_'}, [], ['$1']}]) of
        [Exp] -> Exp;
        [] -> none
    end.

-spec next(ref(), erl_peb_store:cursor()) -> binary() | '$end_of_table'.
next(#{table := T}, first) -> mnesia:dirty_first(T);
next(#{table := T}, Id) -> mnesia:dirty_next(T, Id).

-spec count(ref(), integer()) -> non_neg_integer().
count(#{table := T}, Now) ->
    length(mnesia:dirty_select(
             T, [{#erl_peb_session{expires_at = '$1', _ = '_'}, [{'>', '$1', Now}], [true]}])).

-spec stored(ref()) -> non_neg_integer().
stored(#{table := T}) -> mnesia:table_info(T, size).

-spec scan(ref(), start | term(), erl_peb_store:predicate(), pos_integer()) ->
    {[binary()], term() | done}.
scan(#{table := T}, start, Pred, Batch) ->
    Spec = erl_peb_store:scan_spec(Pred),
    continue(mnesia:activity(async_dirty, fun() -> mnesia:select(T, Spec, Batch, read) end));
scan(_Ref, Cont, _Pred, _Batch) ->
    continue(mnesia:activity(async_dirty, fun() -> mnesia:select(Cont) end)).

continue('$end_of_table') -> {[], done};
continue({Ids, Cont}) -> {Ids, Cont}.

%% --- writes (in the server's workers) --------------------------------------------------------

-spec put(ref(), binary(), term(), erl_peb_store:expires(), integer(), any | non_neg_integer()) ->
    {ok, pos_integer()} | {conflict, non_neg_integer()} | {error, term()}.
put(#{table := T} = Ref, Id, Data, Exp, Now, Expected) ->
    durable(Ref, fun() ->
        Current = case mnesia:read(T, Id, write) of
                      [#erl_peb_session{expires_at = E, version = V}] when E > Now -> V;
                      _ -> 0
                  end,
        case Expected =:= any orelse Expected =:= Current of
            true ->
                ok = mnesia:write(T, #erl_peb_session{id = Id, data = Data, expires_at = Exp,
                                                      version = Current + 1, updated_at = Now}, write),
                {ok, Current + 1};
            false ->
                {conflict, Current}
        end
    end).

-spec touch(ref(), binary(), erl_peb_store:expires(), integer()) ->
    {ok, erl_peb_store:expires()} | not_found | {error, term()}.
touch(#{table := T} = Ref, Id, Exp, Now) ->
    durable(Ref, fun() ->
        case mnesia:read(T, Id, write) of
            [#erl_peb_session{expires_at = E} = S] when E > Now ->
                ok = mnesia:write(T, S#erl_peb_session{expires_at = Exp, updated_at = Now}, write),
                {ok, Exp};
            _ ->
                not_found
        end
    end).

-spec delete(ref(), binary()) -> ok | {error, term()}.
delete(#{table := T} = Ref, Id) ->
    durable(Ref, fun() -> mnesia:delete(T, Id, write) end).

-spec clear(ref()) -> ok | {error, term()}.
clear(#{table := T} = Ref) ->
    case mnesia:clear_table(T) of
        {atomic, ok} -> synced(Ref, ok);
        {aborted, Reason} -> {error, Reason}
    end.

-spec delete_matching(ref(), [binary()], erl_peb_store:predicate()) ->
    non_neg_integer() | {error, term()}.
delete_matching(_Ref, [], _Pred) ->
    0;
delete_matching(#{table := T} = Ref, Ids, Pred) ->
    durable(Ref, fun() ->
        lists:foldl(
          fun(Id, N) ->
                  case mnesia:read(T, Id, write) of
                      [S] ->
                          case erl_peb_store:matches(S, Pred) of
                              true -> ok = mnesia:delete(T, Id, write), N + 1;
                              false -> N
                          end;
                      [] ->
                          N
                  end
          end, 0, Ids)
    end).

-spec lock_acquire(ref(), binary(), binary(), pid(), integer(), integer()) ->
    ok | {held, integer()} | {error, term()}.
lock_acquire(#{locks := L}, Id, Token, Holder, Exp, Now) ->
    transaction(fun() ->
        case mnesia:read(L, Id, write) of
            [#erl_peb_lock{expires_at = HeldUntil}] when HeldUntil > Now ->
                {held, HeldUntil};
            _ ->
                mnesia:write(L, #erl_peb_lock{id = Id, token = Token, holder = Holder,
                                              expires_at = Exp}, write)
        end
    end).

-spec lock_release(ref(), binary(), binary()) -> ok | not_held | {error, term()}.
lock_release(#{locks := L}, Id, Token) ->
    transaction(fun() ->
        case mnesia:read(L, Id, write) of
            %% delete_object, not delete: the table event then carries the token.
            [#erl_peb_lock{token = Token} = Lock] -> mnesia:delete_object(L, Lock, write);
            _ -> not_held
        end
    end).

transaction(Fun) ->
    case mnesia:sync_transaction(Fun) of
        {atomic, Result} -> Result;
        {aborted, Reason} -> {error, Reason}
    end.

durable(Ref, Fun) ->
    case transaction(Fun) of
        {error, _} = Error -> Error;
        Result -> synced(Ref, Result)
    end.

synced(#{syncer := undefined}, Result) ->
    Result;
synced(#{syncer := Syncer}, Result) ->
    MRef = erlang:monitor(process, Syncer),
    Syncer ! {sync, self(), MRef},
    receive
        {MRef, ok} ->
            erlang:demonitor(MRef, [flush]),
            Result;
        {'DOWN', MRef, _, _, Reason} ->
            {error, {disc_sync, Reason}}
    end.

%% Group commit: every request that arrived before a sync started is answered by that sync.
syncer() ->
    receive
        {sync, From, Tag} ->
            Waiting = drain([{From, Tag}]),
            case mnesia:sync_log() of
                ok -> ok;
                Error -> logger:error("erl_peb: syncing the Mnesia log failed: ~p", [Error])
            end,
            lists:foreach(fun({F, T}) -> F ! {T, ok} end, Waiting),
            syncer()
    end.

drain(Acc) ->
    receive
        {sync, From, Tag} -> drain([{From, Tag} | Acc])
    after 0 ->
        Acc
    end.

%% --- cluster ---------------------------------------------------------------------------------

%% One node sweeps: the least of those holding an active copy, so that a pass is not repeated on
%% every node (the deletes are conditional, so an overlap while membership changes is harmless).
-spec sweeps_here(ref()) -> boolean().
sweeps_here(#{table := T}) ->
    case mnesia:table_info(T, active_replicas) of
        [] -> false;
        Nodes -> lists:min(Nodes) =:= node()
    end.

-spec status(ref()) -> map().
status(#{table := T, copies := Copies}) ->
    Base = #{members => lists:sort(mnesia:system_info(db_nodes)),
             running => lists:sort(mnesia:system_info(running_db_nodes)),
             replicas => lists:sort(mnesia:table_info(T, active_replicas)),
             copies => Copies,
             majority => mnesia:table_info(T, majority),
             table => T,
             memory_bytes => mnesia:table_info(T, memory) * erlang:system_info(wordsize)},
    case Copies of
        disc_copies -> Base#{directory => unicode:characters_to_binary(mnesia:system_info(directory))};
        ram_copies -> Base
    end.

-spec handle_info(term(), ref()) ->
    {lock_free, binary(), binary() | any} | {lock_taken, binary(), binary()}
    | {inconsistent_database, term(), node()} | {node_down, node()} | {node_up, node()}
    | stopped | ignore.
%% Simple table events name the table, not the record, in the record's first element.
handle_info({mnesia_table_event, {write, {L, Id, Token, _Holder, _Exp}, _}}, #{locks := L}) ->
    {lock_taken, Id, Token};
handle_info({mnesia_table_event, {delete_object, {L, Id, Token, _Holder, _Exp}, _}}, #{locks := L}) ->
    {lock_free, Id, Token};
handle_info({mnesia_table_event, {delete, {L, Id}, _}}, #{locks := L}) ->
    {lock_free, Id, any};
handle_info({mnesia_system_event, {inconsistent_database, Context, Node}}, _Ref) ->
    {inconsistent_database, Context, Node};
handle_info({mnesia_system_event, {mnesia_down, Node}}, _Ref) when Node =:= node() ->
    stopped;
handle_info({mnesia_system_event, {mnesia_down, Node}}, _Ref) ->
    {node_down, Node};
handle_info({mnesia_system_event, {mnesia_up, Node}}, _Ref) ->
    {node_up, Node};
handle_info(_Msg, _Ref) ->
    ignore.

-spec join(ref(), node(), erl_peb_config:config()) -> {ok, ref()} | {error, term()}.
join(Ref, Node, Config) ->
    try
        ok = do_join(Node, Config),
        ok = tables(Config),
        {ok, Ref}
    catch
        throw:{error, Reason} -> {error, Reason}
    end.
