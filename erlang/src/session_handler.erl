%% The rpc contract of the original PHP session handler (mypeb's peb_rpc through `rex'), kept so
%% that the PHP handler and anything else that spoke it works unchanged.
%%
%% Ids and data come as binaries or as Erlang strings: mypeb's `~s' sends a list of bytes. A list
%% of bytes is taken as it is; a list holding larger code points as Unicode text, stored as UTF-8.
%% Data is stored as a binary and read back as one. Sessions last `default_ttl' from their last
%% write, and gc/1 removes those idle longer than its argument, in seconds, as PHP's
%% session.gc_maxlifetime means it.
-module(session_handler).

-export([start/0, read/1, write/2, destroy/1, gc/1]).

-type text() :: binary() | string().

%% Starts the session server when it is not running.
-spec start() -> ok | {error, term()}.
start() ->
    erl_peb:start().

%% The session's data, or an empty binary when there is none (what PHP expects of a read).
%% A session written in another shape by another client (not a binary) reads as empty.
-spec read(text()) -> binary().
read(Id) ->
    case erl_peb:get(binary(Id)) of
        {ok, Data, _ExpiresAt, _Version} when is_binary(Data) -> Data;
        _ -> <<>>
    end.

-spec write(text(), text()) -> ok | {error, term()}.
write(Id, Data) ->
    case erl_peb:set(binary(Id), binary(Data)) of
        {ok, _Version} -> ok;
        {error, _} = Error -> Error
    end.

-spec destroy(text()) -> ok | {error, term()}.
destroy(Id) ->
    erl_peb:destroy(binary(Id)).

%% Removes the sessions idle for more than MaxLifetime seconds; returns how many.
-spec gc(non_neg_integer() | text()) -> non_neg_integer() | {error, term()}.
gc(MaxLifetime) when is_integer(MaxLifetime), MaxLifetime >= 0 ->
    case erl_peb:gc(MaxLifetime * 1000) of
        {ok, Removed} -> Removed;
        {error, _} = Error -> Error
    end;
gc(MaxLifetime) when is_binary(MaxLifetime); is_list(MaxLifetime) ->
    gc(binary_to_integer(string:trim(binary(MaxLifetime)))).

-spec binary(text()) -> binary().
binary(B) when is_binary(B) ->
    B;
binary(L) when is_list(L) ->
    try
        iolist_to_binary(L)
    catch
        error:badarg ->
            case unicode:characters_to_binary(L) of
                B when is_binary(B) -> B;
                _ -> erlang:error(badarg, [L])
            end
    end;
binary(Other) ->
    erlang:error(badarg, [Other]).
