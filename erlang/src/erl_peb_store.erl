%% The storage behaviour of the session server, in the manner of OTP's ssl_session_cache_api:
%% a backend keeps `#erl_peb_session{}' records and lock leases; the server decides when and
%% from which process each callback runs.
%%
%% Two kinds of callbacks:
%% - reads (lookup/2, expires_at/2, next/2, count/2, stored/1, scan/4) run in any process, straight
%%   from the table, so readers never wait for the server;
%% - writes run where concurrency/0 says: `serial' in the server process itself (the server is
%%   then the table's only writer, as with ETS), `keyed' in one of the server's worker processes
%%   chosen by the session id (Mnesia: transactions may wait on other nodes, and the server must
%%   keep answering reads meanwhile; one worker per id keeps one client's writes in order).
%%
%% Time is Erlang system time in milliseconds; a session is visible while `ExpiresAt > Now'.
-module(erl_peb_store).

-include("erl_peb.hrl").

-export([module/1, read/4, visible/2, page/7, scan_spec/1, key_spec/2, matches/2]).

-export_type([ref/0, id/0, expires/0, cursor/0, predicate/0, session/0]).

-type ref() :: term().
-type id() :: binary().
-type expires() :: integer() | infinity.
-type cursor() :: first | id().
-type predicate() :: {expired, Now :: integer()} | {idle, Cutoff :: integer()}.
-type session() :: #erl_peb_session{}.

%% In the supervisor, before the server starts: resources that must outlive a restart of the
%% server (the ETS table).
-callback setup(erl_peb_config:config()) -> ok.
%% In the server's init.
-callback init(erl_peb_config:config()) -> {ok, ref()} | {error, term()}.
-callback concurrency() -> serial | keyed.
-callback terminate(ref()) -> ok.

-callback lookup(ref(), id()) -> session() | none.
-callback expires_at(ref(), id()) -> expires() | none.
-callback next(ref(), cursor()) -> id() | '$end_of_table'.
-callback count(ref(), Now :: integer()) -> non_neg_integer().
%% How many records the table holds, expired ones included.
-callback stored(ref()) -> non_neg_integer().
%% One bounded step of a pass over the table: ids matching the predicate, and where to go on.
-callback scan(ref(), start | term(), predicate(), Batch :: pos_integer()) ->
    {[id()], term() | done}.

%% Writes. `Expected' is `any' or the version the caller last saw (0: no visible session).
-callback put(ref(), id(), Data :: term(), expires(), Now :: integer(), any | non_neg_integer()) ->
    {ok, pos_integer()} | {conflict, non_neg_integer()} | {error, term()}.
-callback touch(ref(), id(), expires(), Now :: integer()) ->
    {ok, expires()} | not_found | {error, term()}.
-callback delete(ref(), id()) -> ok | {error, term()}.
-callback clear(ref()) -> ok | {error, term()}.
%% Deletes those of Ids that still match the predicate; returns how many it deleted.
-callback delete_matching(ref(), [id()], predicate()) -> non_neg_integer() | {error, term()}.
-callback lock_acquire(ref(), id(), Token :: binary(), Holder :: pid(), ExpiresAt :: integer(),
                       Now :: integer()) ->
    ok | {held, ExpiresAt :: integer()} | {error, term()}.
-callback lock_release(ref(), id(), Token :: binary()) -> ok | not_held | {error, term()}.

%% Cluster and reporting.
-callback sweeps_here(ref()) -> boolean().
-callback status(ref()) -> map().
%% A message the server did not recognise; the backend says what it means.
-callback handle_info(term(), ref()) ->
    {lock_free, id(), Token :: binary() | any} | {lock_taken, id(), Token :: binary()}
    | {inconsistent_database, Context :: term(), node()} | {node_down, node()} | {node_up, node()}
    | stopped | ignore.
-callback join(ref(), node(), erl_peb_config:config()) -> {ok, ref()} | {error, term()}.

-spec module(ets | mnesia) -> module().
module(ets) -> erl_peb_store_ets;
module(mnesia) -> erl_peb_store_mnesia.

-spec visible(expires(), integer()) -> boolean().
visible(ExpiresAt, Now) -> ExpiresAt > Now.

%% The reply to `{get, Id}'.
-spec read(module(), ref(), id(), integer()) ->
    {ok, term(), expires(), pos_integer()} | not_found.
read(Mod, Ref, Id, Now) ->
    case Mod:lookup(Ref, Id) of
        #erl_peb_session{data = Data, expires_at = Exp, version = V} when Exp > Now ->
            {ok, Data, Exp, V};
        _ ->
            not_found
    end.

%% One page of ids (`ids') or of sessions (`all'), in id order, starting after Cursor. The walk
%% examines at most a few times Limit keys so that a table full of expired sessions still gives
%% a bounded call; the page may then be shorter than Limit while the cursor is not yet `done'.
-spec page(module(), ref(), ids | all, cursor(), pos_integer(), integer(), pos_integer()) ->
    {ok, list(), id() | done}.
page(Mod, Ref, Kind, Cursor, Limit, Now, MaxPage) ->
    N = min(Limit, MaxPage),
    page_loop(Mod, Ref, Kind, Cursor, N, 4 * N + 16, Now, []).

page_loop(_Mod, _Ref, _Kind, Cursor, 0, _Budget, _Now, Acc) ->
    {ok, lists:reverse(Acc), Cursor};
page_loop(_Mod, _Ref, _Kind, Cursor, _Left, 0, _Now, Acc) ->
    {ok, lists:reverse(Acc), Cursor};
page_loop(Mod, Ref, Kind, Cursor, Left, Budget, Now, Acc) ->
    case Mod:next(Ref, Cursor) of
        '$end_of_table' ->
            {ok, lists:reverse(Acc), done};
        Id when Kind =:= ids ->
            case Mod:expires_at(Ref, Id) of
                Exp when Exp =/= none, Exp > Now ->
                    page_loop(Mod, Ref, Kind, Id, Left - 1, Budget - 1, Now, [Id | Acc]);
                _ ->
                    page_loop(Mod, Ref, Kind, Id, Left, Budget - 1, Now, Acc)
            end;
        Id ->
            case Mod:lookup(Ref, Id) of
                #erl_peb_session{data = D, expires_at = Exp, version = V} when Exp > Now ->
                    page_loop(Mod, Ref, Kind, Id, Left - 1, Budget - 1, Now, [{Id, D, Exp, V} | Acc]);
                _ ->
                    page_loop(Mod, Ref, Kind, Id, Left, Budget - 1, Now, Acc)
            end
    end.

%% Match specification selecting the ids a purge removes.
-spec scan_spec(predicate()) -> ets:match_spec().
scan_spec(Pred) -> spec('$1', Pred, '$1').

%% Match specification that matches the one record Id when it matches the predicate: the check
%% reads two fields without copying the session's data.
-spec key_spec(id(), predicate()) -> ets:match_spec().
key_spec(Id, Pred) -> spec(Id, Pred, true).

spec(Key, {expired, Now}, Result) ->
    [{#erl_peb_session{id = Key, expires_at = '$2', _ = '_'}, [{'=<', '$2', Now}], [Result]}];
spec(Key, {idle, Cutoff}, Result) ->
    [{#erl_peb_session{id = Key, updated_at = '$2', _ = '_'}, [{'=<', '$2', Cutoff}], [Result]}].

-spec matches(session(), predicate()) -> boolean().
matches(#erl_peb_session{expires_at = Exp}, {expired, Now}) -> Exp =< Now;
%% Idle for at least the limit: gc(0) removes every session, as a lifetime of 0 means.
matches(#erl_peb_session{updated_at = U}, {idle, Cutoff}) -> U =< Cutoff.
