%% ETS backend: one node, nothing to set up, the default.
%%
%% The session table is created by the supervisor (setup/1) so that it survives a restart of the
%% server, as ranch keeps its table; it is public so that any process reads it directly, and by
%% convention only the server writes it (concurrency() =:= serial), which is what makes versions
%% and leases race-free without locks. It is an ordered_set so that paging by id is stable while
%% the table changes. Lock leases live in a second table owned by the server: they die with it,
%% as do the monitors on their holders.
-module(erl_peb_store_ets).

-behaviour(erl_peb_store).

-include("erl_peb.hrl").

-export([setup/1, init/1, concurrency/0, terminate/1,
         lookup/2, expires_at/2, next/2, count/2, stored/1, scan/4,
         put/6, touch/4, delete/2, clear/1, delete_matching/3, lock_acquire/6, lock_release/3,
         sweeps_here/1, status/1, handle_info/2, join/3]).

-type ref() :: #{table := atom(), locks := ets:tid()}.

-spec setup(erl_peb_config:config()) -> ok.
setup(#{table := Tab}) ->
    case ets:whereis(Tab) of
        undefined ->
            _ = ets:new(Tab, [ordered_set, public, named_table, {keypos, #erl_peb_session.id},
                              {read_concurrency, true}]),
            ok;
        _ ->
            ok
    end.

-spec init(erl_peb_config:config()) -> {ok, ref()} | {error, term()}.
init(#{table := Tab}) ->
    case ets:whereis(Tab) of
        undefined ->
            {error, {no_table, Tab}};
        _ ->
            Locks = ets:new(erl_peb_locks, [set, protected, {keypos, #erl_peb_lock.id}]),
            {ok, #{table => Tab, locks => Locks}}
    end.

-spec concurrency() -> serial.
concurrency() -> serial.

-spec terminate(ref()) -> ok.
terminate(_Ref) -> ok.

-spec lookup(ref(), binary()) -> #erl_peb_session{} | none.
lookup(#{table := T}, Id) ->
    case ets:lookup(T, Id) of
        [S] -> S;
        [] -> none
    end.

-spec expires_at(ref(), binary()) -> erl_peb_store:expires() | none.
expires_at(#{table := T}, Id) ->
    try
        ets:lookup_element(T, Id, #erl_peb_session.expires_at)
    catch
        error:badarg -> none
    end.

-spec next(ref(), erl_peb_store:cursor()) -> binary() | '$end_of_table'.
next(#{table := T}, first) -> ets:first(T);
next(#{table := T}, Id) -> ets:next(T, Id).

-spec count(ref(), integer()) -> non_neg_integer().
count(#{table := T}, Now) ->
    ets:select_count(T, [{#erl_peb_session{expires_at = '$1', _ = '_'}, [{'>', '$1', Now}], [true]}]).

-spec stored(ref()) -> non_neg_integer().
stored(#{table := T}) -> ets:info(T, size).

-spec scan(ref(), start | term(), erl_peb_store:predicate(), pos_integer()) ->
    {[binary()], term() | done}.
scan(#{table := T}, start, Pred, Batch) ->
    continue(ets:select(T, erl_peb_store:scan_spec(Pred), Batch));
scan(_Ref, Cont, _Pred, _Batch) ->
    continue(ets:select(Cont)).

continue('$end_of_table') -> {[], done};
continue({Ids, Cont}) -> {Ids, Cont}.

-spec put(ref(), binary(), term(), erl_peb_store:expires(), integer(), any | non_neg_integer()) ->
    {ok, pos_integer()} | {conflict, non_neg_integer()}.
put(#{table := T}, Id, Data, Exp, Now, Expected) ->
    Current = current_version(T, Id, Now),
    case Expected =:= any orelse Expected =:= Current of
        true ->
            V = Current + 1,
            true = ets:insert(T, #erl_peb_session{id = Id, data = Data, expires_at = Exp,
                                                  version = V, updated_at = Now}),
            {ok, V};
        false ->
            {conflict, Current}
    end.

%% The version of the visible session, 0 when there is none. An expired session counts as
%% absent: writing it again starts a new session at version 1.
%% Two element lookups rather than a select: no match specification to compile on every write,
%% and the data is not copied. Only the server writes, so nothing changes between the two.
current_version(T, Id, Now) ->
    try ets:lookup_element(T, Id, #erl_peb_session.expires_at) of
        Exp when Exp > Now -> ets:lookup_element(T, Id, #erl_peb_session.version);
        _ -> 0
    catch
        error:badarg -> 0
    end.

-spec touch(ref(), binary(), erl_peb_store:expires(), integer()) -> {ok, erl_peb_store:expires()} | not_found.
touch(#{table := T} = Ref, Id, Exp, Now) ->
    case expires_at(Ref, Id) of
        Old when Old =/= none, Old > Now ->
            true = ets:update_element(T, Id, [{#erl_peb_session.expires_at, Exp},
                                              {#erl_peb_session.updated_at, Now}]),
            {ok, Exp};
        _ ->
            not_found
    end.

-spec delete(ref(), binary()) -> ok.
delete(#{table := T}, Id) ->
    true = ets:delete(T, Id),
    ok.

-spec clear(ref()) -> ok.
clear(#{table := T}) ->
    true = ets:delete_all_objects(T),
    ok.

%% Runs in the server, the only writer: nothing changes between the check and the delete.
-spec delete_matching(ref(), [binary()], erl_peb_store:predicate()) -> non_neg_integer().
delete_matching(#{table := T}, Ids, Pred) ->
    lists:foldl(
      fun(Id, N) ->
              case ets:select(T, erl_peb_store:key_spec(Id, Pred)) of
                  [true] -> ets:delete(T, Id), N + 1;
                  [] -> N
              end
      end, 0, Ids).

-spec lock_acquire(ref(), binary(), binary(), pid(), integer(), integer()) -> ok | {held, integer()}.
lock_acquire(#{locks := L}, Id, Token, Holder, Exp, Now) ->
    case ets:lookup(L, Id) of
        [#erl_peb_lock{expires_at = HeldUntil}] when HeldUntil > Now ->
            {held, HeldUntil};
        _ ->
            true = ets:insert(L, #erl_peb_lock{id = Id, token = Token, holder = Holder, expires_at = Exp}),
            ok
    end.

-spec lock_release(ref(), binary(), binary()) -> ok | not_held.
lock_release(#{locks := L}, Id, Token) ->
    case ets:lookup(L, Id) of
        [#erl_peb_lock{token = Token}] ->
            true = ets:delete(L, Id),
            ok;
        _ ->
            not_held
    end.

-spec sweeps_here(ref()) -> true.
sweeps_here(_Ref) -> true.

-spec status(ref()) -> map().
status(#{table := T}) ->
    #{members => [node()], running => [node()], table => T,
      memory_bytes => ets:info(T, memory) * erlang:system_info(wordsize)}.

-spec handle_info(term(), ref()) -> ignore.
handle_info(_Msg, _Ref) -> ignore.

-spec join(ref(), node(), erl_peb_config:config()) -> {error, {not_clustered, ets}}.
join(_Ref, _Node, _Config) -> {error, {not_clustered, ets}}.
